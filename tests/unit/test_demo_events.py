"""The demo's streams (`collector demo`): valid CDEvents in elite / high / medium groups that are
deterministic from the seed, ids that do not depend on the clock, and ClusterCockpit lines the
line-protocol decoder stores whole."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from collector import ccmessage, demo, demo_events
from collector.events import Origin, normalise
from collector.settings import RetentionSettings

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def stream(seed: int = 5, count: int = 30, end: datetime = NOW, days: float = 40) -> list[Any]:
    return [
        doc
        for docs in demo_events.demo_deliveries(demo_events.demo_plan(seed, count, end, days))
        for doc in docs
    ]


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return stream()


def test_the_performer_mix_is_deterministic_from_the_seed() -> None:
    fleet = demo_events.services(1, 200)
    first = demo_events.performers(1, fleet)
    again = demo_events.performers(1, fleet)
    other = demo_events.performers(2, fleet)
    assert {k: v.name for k, v in first.items()} == {k: v.name for k, v in again.items()}
    assert {k: v.name for k, v in first.items()} != {k: v.name for k, v in other.items()}
    assert set(first) == {s.name for s in fleet}
    # The shares, whatever the seed.
    for groups in (first, other):
        assert Counter(p.name for p in groups.values()) == {"elite": 30, "high": 90, "medium": 80}


@pytest.mark.parametrize("count", [1, 2, 3, 7, 342])
def test_every_service_gets_a_group_and_small_fleets_get_every_group(count: int) -> None:
    fleet = demo_events.services(9, count)
    groups = demo_events.performers(9, fleet)
    assert len(groups) == count
    if count >= len(demo_events.PERFORMERS):
        assert {p.name for p in groups.values()} == {"elite", "high", "medium"}


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    assert orjson.dumps(stream(seed=5, count=6)) == orjson.dumps(stream(seed=5, count=6))
    first = {e["context"]["id"] for e in stream(seed=5, count=6)}
    assert not first & {e["context"]["id"] for e in stream(seed=6, count=6)}


def test_ids_do_not_depend_on_the_clock() -> None:
    # Three days and five hours later (another weekday, another hour): the same deliveries with
    # the same ids, only the times move. Events after the end are left out, so a delivery near
    # the end may have fewer events in one of the two: the events of one are a prefix of the
    # other's.
    later = NOW + timedelta(days=3, hours=5)
    now_plan = demo_events.demo_plan(5, 8, NOW, 40)
    later_plan = demo_events.demo_plan(5, 8, later, 40)
    pairs = list(
        zip(
            demo_events.demo_deliveries(now_plan),
            demo_events.demo_deliveries(later_plan),
            strict=True,
        )
    )
    same = 0
    for a, b in pairs:
        a_ids = [e["context"]["id"] for e in a]
        b_ids = [e["context"]["id"] for e in b]
        shorter = min(len(a_ids), len(b_ids))
        assert a_ids[:shorter] == b_ids[:shorter]
        same += a_ids == b_ids and bool(a_ids)
        if a and b:
            assert _at(b[0]) != _at(a[0])
    assert same > 0.9 * len(pairs)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["context"]["timestamp"])


def test_a_sample_validates_against_the_cdevents_schemas(
    events: list[dict[str, Any]], validators: dict[str, Any]
) -> None:
    sample = {e["context"]["type"]: e for e in events}
    sample.update({str(i): e for i, e in enumerate(events[::40])})
    assert set(demo_events.TYPES) <= {e["context"]["type"] for e in sample.values()}
    for event in sample.values():
        event_type = event["context"]["type"]
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validators[event_type].iter_errors(event)
        ]
        assert not errors, f"{event['context']['id']} ({event_type}): {errors}"


def test_every_event_is_stored_and_unique_and_none_lies_ahead(events: list[dict[str, Any]]) -> None:
    origin = Origin(received_via="demo", received_at=NOW)
    identities = set()
    for event in events:
        raw = orjson.dumps(event)
        stored = normalise(orjson.loads(raw), raw, origin, {})
        identities.add((stored.source, stored.type, stored.id))
        assert NOW - timedelta(days=50) <= stored.time <= NOW
    assert len(identities) == len(events)


def test_artifacts_are_packaged_from_a_merged_change(events: list[dict[str, Any]]) -> None:
    merged = {
        (e["subject"]["id"], e["subject"]["source"])
        for e in events
        if e["context"]["type"].startswith("dev.cdevents.change.merged.")
    }
    packaged = [
        e for e in events if e["context"]["type"].startswith("dev.cdevents.artifact.packaged.")
    ]
    assert packaged
    for event in packaged:
        change = event["subject"]["content"]["change"]
        assert (change["id"], change["source"]) in merged


def test_some_test_cases_are_flaky(events: list[dict[str, Any]]) -> None:
    outcomes: dict[str, set[str]] = {}
    for e in events:
        if e["context"]["type"].startswith("dev.cdevents.testcaserun.finished."):
            content = e["subject"]["content"]
            outcomes.setdefault(content["testCase"]["id"], set()).add(content["outcome"])
    assert any(found == {"pass", "fail"} for found in outcomes.values())
    assert any(found == {"pass"} for found in outcomes.values())


def test_each_service_deploys_to_dev_staging_and_one_production_region(
    events: list[dict[str, Any]],
) -> None:
    environments: dict[str, set[str]] = {}
    for e in events:
        if e["subject"]["type"] == "service":
            environment = e["subject"]["content"]["environment"]["id"]
            environments.setdefault(e["subject"]["id"], set()).add(environment)
    homes = {s.name: s.home_region for s in demo_events.services(5, 30)}
    assert 25 <= len(environments) <= 30  # a slow service may not have deployed yet
    for service, found in environments.items():
        assert found <= {"dev", "staging", homes[service]}
    assert len(set(homes.values())) == 3


def test_cluster_lines_are_stored_whole_and_deterministic() -> None:
    lines = demo_events.cluster_lines(3, 8, NOW, 14)
    assert lines == demo_events.cluster_lines(3, 8, NOW, 14)
    decoded = ccmessage.decode("\n".join(lines), Origin("demo", NOW))
    assert not decoded.rejected
    assert len(decoded.events) == len(lines)
    assert all(NOW - timedelta(days=14) <= e.time <= NOW for e in decoded.events)
    types = Counter(e.type for e in decoded.events)
    starts = types["org.clustercockpit.event.start_job"]
    stops = types["org.clustercockpit.event.stop_job"]
    assert 0 < stops < starts  # the jobs still running at the end have no stop yet
    assert {e.family for e in decoded.events} == {"ccmessage", "cclog"}
    clusters = {orjson.loads(e.payload)["tags"]["cluster"] for e in decoded.events}
    assert clusters == {"fritz", "alex"}
    assert types["org.clustercockpit.event.gpu_xid"] > 0


@pytest.mark.parametrize(
    ("days", "retention", "expected"),
    [
        (90, {}, 14),
        (5, {}, 5),
        (90, {"ccmessage": "7 days"}, 6),
        (90, {"cclog": "1 week"}, 6),
        (90, {"ccmessage": "1 day"}, 0.5),
        (90, {"ccmessage": "forever", "cclog": "1 month"}, 14),
    ],
)
def test_cluster_data_stays_inside_the_retention(
    days: float, retention: dict[str, str], expected: float
) -> None:
    assert demo.cluster_days(days, RetentionSettings(**retention)) == expected


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal() -> None:
    out = Terminal()
    progress = demo.Progress(4, out)
    for _ in range(4):
        progress.advance(1, 10)
    progress.close()
    text = out.getvalue()
    assert text.startswith("\rdemo: [")
    assert text.endswith("100% 40 events, " + text.rsplit(", ", 1)[1])
    assert text.count("\n") == 1  # the line closed at the end


def test_progress_writes_a_line_per_tenth_elsewhere() -> None:
    out = io.StringIO()
    progress = demo.Progress(100, out)
    for _ in range(100):
        progress.advance(1, 3)
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[-1].startswith("demo: [" + "#" * 30 + "] 100% 300 events")
    assert "\r" not in out.getvalue()
