"""One contract, two sinks: MemorySink (the test double) and PostgresSink (the real thing).

Every contract test runs against both, so the double stays honest; the tests after them check
what only PostgreSQL has (rows in the `api` views, data PostgreSQL itself refuses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
import psycopg
import pytest

from collector.events import Event, Origin, RejectedEvent, normalise
from collector.ports import Batch, BatchResult, Sink
from collector.sinks.memory import MemorySink
from collector.sinks.postgres import PostgresSink
from tests.conftest import SPEC

pytestmark = pytest.mark.anyio

TIME = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
RECEIVED = datetime(2025, 3, 4, 5, 6, 8, tzinfo=UTC)

Key = tuple[str, str, str]


def event(
    event_id: str, source: str = "/src", event_type: str = "com.example.t", **kw: Any
) -> Event:
    fields: dict[str, Any] = {
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": TIME,
        "family": "cloudevents",
        "payload": orjson.dumps({"id": event_id, "source": source, "type": event_type}),
        "received_at": RECEIVED,
        "received_via": "contract",
        **kw,
    }
    return Event(**fields)


def key(e: Event) -> Key:
    return (e.source, e.type, e.id)


def rejected(reason: str, raw: bytes = b"{oops", location: str | None = "line 1") -> RejectedEvent:
    return RejectedEvent(
        reason=reason,
        raw=raw,
        received_at=RECEIVED,
        received_via="contract",
        location=location,
        metadata={"file": "in.jsonl", "line": 1},
    )


@dataclass
class Harness:
    """A sink under test and a way to see what it stored."""

    kind: str
    sink: Sink
    url: str | None = None

    def stored(self) -> dict[Key, str]:
        """Stored events by identity, with their payload as parsed JSON text."""
        if isinstance(self.sink, MemorySink):
            return {k: e.payload.decode() for k, e in self.sink.events.items()}
        with psycopg.connect(self.url or "") as conn:
            rows = conn.execute("SELECT source, type, id, payload::text FROM api.events").fetchall()
        return {(s, t, i): p for s, t, i, p in rows}

    def rejected_reasons(self) -> list[str]:
        if isinstance(self.sink, MemorySink):
            return [r.reason for r in self.sink.rejected]
        with psycopg.connect(self.url or "") as conn:
            rows = conn.execute("SELECT reason FROM api.rejected_events ORDER BY seq").fetchall()
        return [r for (r,) in rows]

    async def write(
        self, *events: Event, rejections: tuple[RejectedEvent, ...] = ()
    ) -> BatchResult:
        with anyio.fail_after(30):  # PostgresSink retries forever on server trouble
            return await self.sink.write(Batch(list(events), list(rejections)))


@pytest.fixture(params=["memory", "postgres"])
def sink_url(request: pytest.FixtureRequest) -> str | None:
    """None for MemorySink; a fresh database for PostgresSink (set up outside the event loop)."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("database_url")
    return url


@pytest.fixture
async def harness(sink_url: str | None) -> AsyncIterator[Harness]:
    if sink_url is None:
        h = Harness("memory", MemorySink("db"))
    else:
        h = Harness("postgres", PostgresSink("db", sink_url, pool_size=2), sink_url)
    await h.sink.open()
    try:
        yield h
    finally:
        await h.sink.close()


@pytest.fixture
async def postgres(database_url: str) -> AsyncIterator[Harness]:
    h = Harness("postgres", PostgresSink("db", database_url, pool_size=2), database_url)
    await h.sink.open()
    try:
        yield h
    finally:
        await h.sink.close()


def stored_payloads(h: Harness) -> dict[Key, Any]:
    return {k: orjson.loads(p) for k, p in h.stored().items()}


# -- the contract -----------------------------------------------------------------------------


async def test_a_batch_is_stored(harness: Harness) -> None:
    events = [event("a"), event("b"), event("c")]

    result = await harness.write(*events)

    assert result == BatchResult(stored=3, duplicates=frozenset(), rejected=0)
    assert stored_payloads(harness) == {key(e): orjson.loads(e.payload) for e in events}


async def test_the_same_batch_again_is_all_duplicates(harness: Harness) -> None:
    events = [event("a"), event("b"), event("c")]
    await harness.write(*events)

    again = await harness.write(*events)

    assert again == BatchResult(stored=0, duplicates=frozenset({0, 1, 2}), rejected=0)
    assert len(harness.stored()) == 3


async def test_duplicates_are_reported_by_their_index(harness: Harness) -> None:
    await harness.write(event("a"), event("b"), event("c"))

    result = await harness.write(event("x"), event("b"), event("y"), event("a"))

    assert result == BatchResult(stored=2, duplicates=frozenset({1, 3}), rejected=0)
    assert sorted(k[2] for k in harness.stored()) == ["a", "b", "c", "x", "y"]


async def test_a_duplicate_keeps_the_first_copy(harness: Harness) -> None:
    first = event("a", payload=b'{"copy": 1}')
    await harness.write(first)

    result = await harness.write(event("a", payload=b'{"copy": 2}', received_via="elsewhere"))

    assert result.duplicates == frozenset({0})
    assert stored_payloads(harness) == {key(first): {"copy": 1}}


async def test_duplicates_inside_one_batch(harness: Harness) -> None:
    result = await harness.write(
        event("a", payload=b'{"copy": 1}'),
        event("b"),
        event("a", payload=b'{"copy": 2}'),
        event("a", payload=b'{"copy": 3}'),
        event("c"),
    )

    assert result == BatchResult(stored=3, duplicates=frozenset({2, 3}), rejected=0)
    payloads = stored_payloads(harness)
    assert sorted(k[2] for k in payloads) == ["a", "b", "c"]
    assert payloads[("/src", "com.example.t", "a")] == {"copy": 1}


async def test_identity_is_source_type_and_id(harness: Harness) -> None:
    result = await harness.write(
        event("same"),
        event("same", source="/other"),
        event("same", event_type="com.example.u"),
    )

    assert result == BatchResult(stored=3, duplicates=frozenset(), rejected=0)
    assert len(harness.stored()) == 3


async def test_rejected_events_are_counted_and_kept(harness: Harness) -> None:
    result = await harness.write(
        event("a"),
        rejections=(rejected("invalid JSON: unexpected end"), rejected("context.id: missing")),
    )

    assert result == BatchResult(stored=1, duplicates=frozenset(), rejected=2)
    assert harness.rejected_reasons() == ["invalid JSON: unexpected end", "context.id: missing"]


async def test_a_batch_of_rejections_only(harness: Harness) -> None:
    result = await harness.write(rejections=(rejected("subject: missing or not an object"),))

    assert result == BatchResult(stored=0, duplicates=frozenset(), rejected=1)
    assert harness.rejected_reasons() == ["subject: missing or not an object"]
    assert harness.stored() == {}


async def test_an_empty_batch(harness: Harness) -> None:
    assert await harness.write() == BatchResult(stored=0, duplicates=frozenset(), rejected=0)


# -- PostgreSQL only --------------------------------------------------------------------------


async def test_events_are_visible_in_the_api_view(postgres: Harness, db: Any) -> None:
    path = SPEC / "v0.5.1" / "conformance" / "service_deployed.json"
    raw = path.read_bytes()
    origin = Origin(received_via="inbox", received_at=RECEIVED)
    cd = normalise(orjson.loads(raw), raw, origin, {"file": path.name})
    plain = event("p1", family="raw", subject=None, metadata={})

    await postgres.write(cd, plain)

    rows = db.execute(
        "SELECT id, source, type, time, subject, family, subject_type, predicate, type_version,"
        " received_at, received_via, payload, metadata FROM api.events ORDER BY seq"
    ).fetchall()
    assert rows == [
        (
            cd.id,
            "/event/source/123",
            "dev.cdevents.service.deployed.0.3.0",
            datetime(2023, 3, 20, 14, 27, 5, 315384, tzinfo=UTC),
            "mySubject123",
            "cdevents",
            "service",
            "deployed",
            "0.3.0",
            RECEIVED,
            "inbox",
            orjson.loads(raw),
            {"file": "service_deployed.json"},
        ),
        (
            "p1",
            "/src",
            "com.example.t",
            TIME,
            None,
            "raw",
            None,
            None,
            None,
            RECEIVED,
            "contract",
            {"id": "p1", "source": "/src", "type": "com.example.t"},
            {},
        ),
    ]
    assert db.execute("SELECT id FROM api.event(%s)", ["p1"]).fetchall() == [("p1",)]


async def test_rejections_are_visible_in_the_api_view(postgres: Harness, db: Any) -> None:
    raw = b'{"bad": "\x00"} \xff'
    await postgres.write(
        rejections=(
            rejected("invalid JSON: unexpected character", raw=raw, location="line 7"),
            rejected("an event must be a JSON object, not a number", raw=b"42", location=None),
        )
    )

    rows = db.execute(
        "SELECT received_at, received_via, reason, location, raw, raw_size, metadata"
        " FROM api.rejected_events ORDER BY seq"
    ).fetchall()
    assert rows == [
        (
            RECEIVED,
            "contract",
            "invalid JSON: unexpected character",
            "line 7",
            '{"bad": "\\x00"} \\xff',
            len(raw),
            {"file": "in.jsonl", "line": 1},
        ),
        (
            RECEIVED,
            "contract",
            "an event must be a JSON object, not a number",
            None,
            "42",
            2,
            {"file": "in.jsonl", "line": 1},
        ),
    ]


async def test_an_event_postgresql_refuses_is_isolated_and_rejected(
    postgres: Harness, db: Any
) -> None:
    await postgres.write(event("seen"))
    # Valid JSON that jsonb cannot store: built directly, as normalise() would refuse it.
    refused = event("bad", payload=b'{"a": "\\u0000"}', metadata={"file": "x.json"})
    batch = [event("g1"), event("g2"), refused, event("seen"), event("g3")]

    result = await postgres.write(*batch, rejections=(rejected("context.id: missing"),))

    assert result == BatchResult(
        stored=3, duplicates=frozenset({3}), rejected=2, refused=frozenset({2})
    )
    assert sorted(k[2] for k in postgres.stored()) == ["g1", "g2", "g3", "seen"]
    rows = db.execute(
        "SELECT reason, location, raw, raw_size, metadata, received_via"
        " FROM api.rejected_events ORDER BY seq"
    ).fetchall()
    assert len(rows) == 2
    assert rows[0][:2] == ("context.id: missing", "line 1")
    reason, location, raw, raw_size, metadata, via = rows[1]
    assert reason.startswith("PostgreSQL refused the event: ")
    assert location is None
    assert raw == refused.payload.decode()
    assert raw_size == len(refused.payload)
    assert metadata == {"file": "x.json", "id": "bad", "source": "/src", "type": "com.example.t"}
    assert via == "contract"


async def test_a_nul_in_a_text_value_is_refused_by_postgresql_and_isolated(
    postgres: Harness, db: Any
) -> None:
    # A NUL cannot travel in a text value: refused as a data error, and isolated.
    refused = event("nul", subject="a\x00b")

    result = await postgres.write(event("ok"), refused)

    assert result == BatchResult(
        stored=1, duplicates=frozenset(), rejected=1, refused=frozenset({1})
    )
    assert [k[2] for k in postgres.stored()] == ["ok"]


async def test_a_batch_of_only_a_refused_event(postgres: Harness, db: Any) -> None:
    refused = event("bad", payload=b'{"a": "\\u0000"}')

    result = await postgres.write(refused)

    assert result == BatchResult(
        stored=0, duplicates=frozenset(), rejected=1, refused=frozenset({0})
    )
    assert postgres.stored() == {}
    [(reason,)] = db.execute("SELECT reason FROM api.rejected_events").fetchall()
    assert reason.startswith("PostgreSQL refused the event: ")


async def test_replay_of_an_event_into_another_partition_is_a_duplicate(postgres: Harness) -> None:
    original = event("a")
    await postgres.write(original)

    # Same identity, a time months away: another time partition, still the same event.
    result = await postgres.write(replace(original, time=datetime(2024, 1, 1, tzinfo=UTC)))

    assert result.duplicates == frozenset({0})
    assert len(postgres.stored()) == 1
