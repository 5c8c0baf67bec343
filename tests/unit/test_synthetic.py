"""The benchmark's generated CDEvents are valid, varied, unique and deterministic."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import jsonschema
import orjson
from referencing import Registry, Resource

from collector.events import Origin, normalise
from collector.synthetic import cdevent_payloads, cdevents
from tests.conftest import SPEC

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SCHEMAS = SPEC / "v0.5.1" / "schemas"


def validators() -> dict[str, jsonschema.Draft202012Validator]:
    """One validator per CDEvents type, resolving the schemas' `links/…` references."""
    documents = [json.loads(p.read_text()) for p in sorted(SCHEMAS.rglob("*.json"))]
    registry: Registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents
    )
    found = {}
    for doc in documents:
        event_type = doc.get("properties", {}).get("context", {}).get("properties", {})
        if "type" in event_type:
            (name,) = event_type["type"]["enum"]
            found[name] = jsonschema.Draft202012Validator(doc, registry=registry)
    return found


def test_a_sample_is_valid_against_the_cdevents_schemas() -> None:
    by_type = validators()
    sample = list(cdevents(2_000, seed=7, now=NOW))
    for event in sample:
        by_type[event["context"]["type"]].validate(event)
    kinds = Counter(e["context"]["type"] for e in sample)
    assert len(kinds) >= 12
    assert len({e["context"]["source"] for e in sample}) >= 30


def test_events_are_about_one_kilobyte_unique_recent_and_accepted() -> None:
    payloads = cdevent_payloads(5_000, seed=3, now=NOW)
    assert 900 <= sum(map(len, payloads)) / len(payloads) <= 1_100
    docs = [orjson.loads(p) for p in payloads]
    assert len({d["context"]["id"] for d in docs}) == len(docs)
    times = [datetime.fromisoformat(d["context"]["timestamp"]) for d in docs]
    assert all(0 <= (NOW - t).total_seconds() <= 3600 for t in times)
    origin = Origin(received_via="bench", received_at=NOW)
    for doc, raw in zip(docs[:500], payloads[:500], strict=True):
        assert normalise(doc, raw, origin, {}).family == "cdevents"


def test_same_seed_same_events_other_seed_other_ids() -> None:
    assert cdevent_payloads(50, seed=1, now=NOW) == cdevent_payloads(50, seed=1, now=NOW)
    ids = {orjson.loads(p)["context"]["id"] for p in cdevent_payloads(500, seed=1, now=NOW)}
    others = {orjson.loads(p)["context"]["id"] for p in cdevent_payloads(500, seed=2, now=NOW)}
    assert not ids & others
