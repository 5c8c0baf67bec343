"""The data of `collector bench api`: the CDEvents around the delivery flows are valid (checked
against the official schemas) and linked to them; the workload is exact, in arrival order,
with its ClusterCockpit share, invalid inputs and replays.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from collector import demo_events
from collector.bench_api import make_workload

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def flows() -> list[dict[str, Any]]:
    return demo_events.generate(6000, seed=7, now=NOW, days=30, service_count=200)


@pytest.fixture(scope="module")
def extra(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return demo_events.complements(flows, seed=7)


def test_complements_validate_against_the_cdevents_schemas(
    extra: list[dict[str, Any]],
    validators: dict[str, Any],
) -> None:
    sample = {e["context"]["type"]: e for e in extra}
    sample.update({str(i): e for i, e in enumerate(extra[::11])})
    assert set(demo_events.COMPLEMENT_TYPES) == {e["context"]["type"] for e in extra}
    for event in sample.values():
        event_type = event["context"]["type"]
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validators[event_type].iter_errors(event)
        ]
        assert not errors, f"{event['context']['id']} ({event_type}): {errors}"


def test_complements_are_linked_to_their_flows(
    flows: list[dict[str, Any]], extra: list[dict[str, Any]]
) -> None:
    merged = {e["subject"]["id"] for e in flows if e["context"]["type"].endswith("merged.0.2.0")}
    packaged = [e for e in extra if ".artifact.packaged." in e["context"]["type"]]
    published = [e for e in flows if ".artifact.published." in e["context"]["type"]]
    assert len(packaged) == len(published)
    assert {e["subject"]["content"]["change"]["id"] for e in packaged} <= merged
    suites = {e["subject"]["id"] for e in extra if ".testsuiterun." in e["context"]["type"]}
    cases = {
        e["subject"]["content"]["testSuiteRun"]["id"]
        for e in flows
        if ".testcaserun." in e["context"]["type"]
    }
    assert suites == cases
    times = [e["context"]["timestamp"] for e in extra]
    assert times == sorted(times)
    ids = [e["context"]["id"] for e in flows + extra]
    assert len(set(ids)) == len(ids)
    assert orjson.dumps(demo_events.complements(flows, seed=7)) == orjson.dumps(extra)


def test_the_workload_is_exact_and_in_arrival_order() -> None:
    workload = make_workload(3000, seed=5, end=NOW, days=40)
    events = [e for batch in workload.batches for e in batch.events]
    assert len(events) == 3000 + workload.replays
    assert workload.events == workload.cdevents + workload.ccmessages == 3000
    assert 0.6 <= workload.cdevents / 3000 <= 0.85
    assert workload.rejected == sum(len(b.rejected) for b in workload.batches) > 0
    received = [e.received_at for e in events]
    assert received == sorted(received)
    # Changes merged early in the span were opened (their branch, their ticket) a bit before.
    assert all(NOW - timedelta(days=40 + 16) <= e.time <= NOW for e in events)
    assert sum(e.time < NOW - timedelta(days=40) for e in events) < 30
    # Each replay is an event sent again, later: the same identity.
    identities = Counter((e.source, e.type, e.id) for e in events)
    assert len(identities) == 3000
    assert sum(n - 1 for n in identities.values()) == workload.replays > 0
    families = Counter(e.family for e in events)
    assert families["ccmessage"] > 0
    assert families["cclog"] > 0
    assert families["cdevents"] == workload.cdevents + workload.replays
    jobs = {e.type for e in events if e.family == "ccmessage"}
    assert "org.clustercockpit.event.start_job" in jobs
