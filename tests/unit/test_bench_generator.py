"""The benchmark's event generator: valid CDEvents (checked against the official JSON schemas),
deterministic, varied and recent, so that a benchmark never measures the rejection path.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from collector import demo_events
from collector.events import Origin, normalise

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
N = 3000


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return demo_events.generate(N, seed=7, now=NOW)


def test_a_sample_validates_against_the_cdevents_schemas(
    events: list[dict[str, Any]], validators: dict[str, Any]
) -> None:
    # Every type, and a spread of the rest.
    sample = {e["context"]["type"]: e for e in events}
    sample.update({str(i): e for i, e in enumerate(events[::7])})
    for event in sample.values():
        event_type = event["context"]["type"]
        assert event_type in validators, f"{event_type} is not a CDEvents 0.4.1 type"
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validators[event_type].iter_errors(event)
        ]
        assert not errors, f"{event['context']['id']} ({event_type}): {errors}"


def test_every_event_becomes_a_stored_event_not_a_rejection(events: list[dict[str, Any]]) -> None:
    origin = Origin(received_via="bench", received_at=NOW)
    for event in events:
        raw = orjson.dumps(event)
        stored = normalise(orjson.loads(raw), raw, origin, {})
        assert stored.family == "cdevents"
        assert stored.id == event["context"]["id"]


def test_the_same_seed_gives_the_same_events() -> None:
    first = demo_events.generate(500, seed=3, now=NOW)
    again = demo_events.generate(500, seed=3, now=NOW)
    other = demo_events.generate(500, seed=4, now=NOW)
    assert orjson.dumps(first) == orjson.dumps(again)
    assert orjson.dumps(first) != orjson.dumps(other)


def test_exactly_n_events_with_unique_identities(events: list[dict[str, Any]]) -> None:
    assert len(events) == N
    identities = {
        (e["context"]["source"], e["context"]["type"], e["context"]["id"]) for e in events
    }
    assert len(identities) == N
    assert len({e["context"]["id"] for e in events}) == N


def test_events_are_about_a_kilobyte(events: list[dict[str, Any]]) -> None:
    sizes = [len(orjson.dumps(e)) for e in events]
    assert 900 <= sum(sizes) / len(sizes) <= 1400
    assert max(sizes) < 4096


def test_timestamps_are_recent_and_in_order(events: list[dict[str, Any]]) -> None:
    times = [datetime.fromisoformat(e["context"]["timestamp"]) for e in events]
    assert times == sorted(times)
    assert all(NOW - timedelta(days=3) <= t <= NOW for t in times)
    assert times[-1] - times[0] > timedelta(days=1)  # spread over days, not minutes


def test_the_stream_is_varied(events: list[dict[str, Any]]) -> None:
    types = Counter(e["context"]["type"] for e in events)
    for kind in (
        "pipelinerun.queued",
        "pipelinerun.started",
        "pipelinerun.finished",
        "taskrun.finished",
        "build.finished",
        "testcaserun.finished",
        "artifact.published",
        "service.deployed",
        "service.upgraded",
        "change.merged",
    ):
        assert types[f"dev.cdevents.{kind}.0.2.0"] > 0, kind
    services = {e["customData"]["repository"] for e in events}
    sources = {e["context"]["source"] for e in events}
    environments = {
        e["subject"]["content"]["environment"]["id"]
        for e in events
        if e["subject"]["type"] == "service"
    }
    assert len(services) >= 50  # of the fleet of 300, in a sample of 3000 events
    assert len(demo_events.services(7)) == 300
    assert len(sources) >= 100
    assert len(environments) >= 3


def test_a_large_run_reaches_rollbacks_and_incidents() -> None:
    events = demo_events.generate(30_000, seed=1, now=NOW)
    types = Counter(e["context"]["type"] for e in events)
    for kind in ("service.rolledback", "incident.detected", "incident.resolved"):
        assert types[f"dev.cdevents.{kind}.0.2.0"] > 0, kind
    assert {e["context"]["type"] for e in events} <= set(demo_events.TYPES)
