"""The ingest rules in SQL, called the way psql or a script would call them.

`collector.ingest` takes parallel arrays (one element per event, and per rejection) and answers
how many events it stored, the 1-based positions of duplicates and how many rejections it kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

Conn = psycopg.Connection[Any]

NOW = datetime.now(UTC).replace(microsecond=0)

INGEST = """
SELECT stored, duplicate_positions, rejected FROM collector.ingest(
    ids => %(ids)s, sources => %(sources)s, types => %(types)s, times => %(times)s,
    families => %(families)s, subjects => %(subjects)s, subject_types => %(subject_types)s,
    predicates => %(predicates)s, type_versions => %(type_versions)s,
    payloads => %(payloads)s, metadatas => %(metadatas)s, received_ats => %(received_ats)s,
    received_vias => %(received_vias)s,
    rejected_reasons => %(rejected_reasons)s, rejected_locations => %(rejected_locations)s,
    rejected_raws => %(rejected_raws)s, rejected_sizes => %(rejected_sizes)s,
    rejected_received_ats => %(rejected_received_ats)s,
    rejected_received_vias => %(rejected_received_vias)s,
    rejected_metadatas => %(rejected_metadatas)s)
"""


@dataclass
class Ev:
    id: str
    source: str = "/ingest-test"
    type: str = "test.event"
    time: datetime = NOW
    family: str = "cloudevents"
    subject: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    received_via: str = "psql"


@dataclass
class Rejection:
    reason: str
    raw: bytes
    location: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def ingest(
    conn: Conn, events: list[Ev], rejected: list[Rejection] | None = None
) -> tuple[int, list[int], int]:
    rejected = rejected or []
    params = {
        "ids": [e.id for e in events],
        "sources": [e.source for e in events],
        "types": [e.type for e in events],
        "times": [e.time for e in events],
        "families": [e.family for e in events],
        "subjects": [e.subject for e in events],
        "subject_types": [None for _ in events],
        "predicates": [None for _ in events],
        "type_versions": [None for _ in events],
        "payloads": [
            orjson.dumps(e.payload or {"id": e.id, "source": e.source}).decode() for e in events
        ],
        "metadatas": [orjson.dumps(e.metadata).decode() if e.metadata else None for e in events],
        "received_ats": [NOW for _ in events],
        "received_vias": [e.received_via for e in events],
        "rejected_reasons": [r.reason for r in rejected],
        "rejected_locations": [r.location for r in rejected],
        "rejected_raws": [r.raw.decode() for r in rejected],
        "rejected_sizes": [len(r.raw) for r in rejected],
        "rejected_received_ats": [NOW for _ in rejected],
        "rejected_received_vias": ["psql" for _ in rejected],
        "rejected_metadatas": [orjson.dumps(r.metadata).decode() for r in rejected],
    }
    row = conn.execute(INGEST, params).fetchone()
    assert row is not None
    return int(row[0]), list(row[1]), int(row[2])


def count(conn: Conn, where: str = "true", params: Any = None) -> int:
    row = conn.execute(f"SELECT count(*) FROM api.events WHERE {where}", params).fetchone()
    assert row is not None
    return int(row[0])


def partition_of(conn: Conn, family: str, at: datetime) -> str | None:
    """The time partition of `family` whose range holds `at`, if any."""
    conn.execute("SET TimeZone = 'UTC'")
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (f"collector.events_{family}",),
    ).fetchall()
    for name, bound in rows:
        lo, hi = re.findall(r"\('([^']+)'\)", bound)
        if datetime.fromisoformat(lo) <= at < datetime.fromisoformat(hi):
            return str(name)
    return None


# -- storing and deduplicating ------------------------------------------------------------------


def test_a_batch_is_stored(db: Conn) -> None:
    events = [
        Ev("a", subject="s-a", payload={"id": "a", "n": 1}, metadata={"file": "x.jsonl"}),
        Ev("b", time=NOW - timedelta(hours=1)),
        Ev("c", family="raw", type="plain.json"),
    ]
    assert ingest(db, events) == (3, [], 0)
    rows = db.execute(
        "SELECT id, source, type, time, family, subject, payload, metadata, received_via"
        " FROM api.events ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == ["a", "b", "c"]
    a = rows[0]
    assert a[1:6] == ("/ingest-test", "test.event", NOW, "cloudevents", "s-a")
    assert a[6] == {"id": "a", "n": 1}
    assert a[7] == {"file": "x.jsonl"}
    assert a[8] == "psql"
    assert rows[1][3] == NOW - timedelta(hours=1)
    assert rows[1][7] == {}  # no metadata given: an empty object, never null
    assert rows[2][4] == "raw"


def test_the_same_batch_again_is_all_duplicates(db: Conn) -> None:
    events = [Ev("a"), Ev("b"), Ev("c")]
    assert ingest(db, events) == (3, [], 0)
    assert ingest(db, events) == (0, [1, 2, 3], 0)
    assert count(db) == 3


def test_duplicate_positions_are_those_of_the_replays(db: Conn) -> None:
    assert ingest(db, [Ev("old-1"), Ev("old-2")]) == (2, [], 0)
    batch = [Ev("new-1"), Ev("old-1"), Ev("new-2"), Ev("old-2"), Ev("new-3")]
    assert ingest(db, batch) == (3, [2, 4], 0)
    assert count(db) == 5


def test_a_duplicate_inside_one_batch_is_stored_once(db: Conn) -> None:
    batch = [Ev("a", payload={"copy": 1}), Ev("b"), Ev("a", payload={"copy": 2})]
    assert ingest(db, batch) == (2, [3], 0)
    assert db.execute("SELECT payload FROM api.events WHERE id = 'a'").fetchall() == [
        ({"copy": 1},)  # the first one wins
    ]


def test_replays_are_counted_per_source_in_api_duplicates(db: Conn) -> None:
    def duplicates() -> list[tuple[Any, ...]]:
        return db.execute(
            "SELECT received_via, duplicates, received_at FROM api.duplicates"
            " ORDER BY received_via, received_at"
        ).fetchall()

    first = [Ev("a"), Ev("b", received_via="hook"), Ev("m", family="ccmessage")]
    assert ingest(db, first) == (3, [], 0)
    assert duplicates() == []  # a batch without replays adds no row
    again = [
        Ev("a"), Ev("c"), Ev("b", received_via="hook"), Ev("c"), Ev("m", family="ccmessage"),
    ]  # fmt: skip
    assert ingest(db, again) == (1, [1, 3, 4, 5], 0)
    assert duplicates() == [("hook", 1, NOW), ("psql", 3, NOW)]
    assert ingest(db, [Ev("b", received_via="hook")]) == (0, [1], 0)
    assert duplicates() == [("hook", 1, NOW), ("hook", 1, NOW), ("psql", 3, NOW)]


def test_identity_is_source_type_and_id(db: Conn) -> None:
    batch = [
        Ev("same", source="/one", type="t1"),
        Ev("same", source="/one", type="t2"),
        Ev("same", source="/two", type="t1"),
    ]
    assert ingest(db, batch) == (3, [], 0)
    assert ingest(db, [Ev("same", source="/two", type="t2")]) == (1, [], 0)
    assert count(db, "id = 'same'") == 4


@pytest.mark.parametrize("shift", [timedelta(days=-730), timedelta(days=730)])
def test_a_late_replay_with_another_time_is_a_duplicate(db: Conn, shift: timedelta) -> None:
    original = Ev("r", time=NOW, payload={"v": "original"})
    assert ingest(db, [original]) == (1, [], 0)
    replay = Ev("r", time=NOW + shift, payload={"v": "replay"})
    assert ingest(db, [replay]) == (0, [1], 0)
    assert db.execute("SELECT time, payload FROM api.events WHERE id = 'r'").fetchall() == [
        (NOW, {"v": "original"})
    ]


def test_old_events_get_their_partition_on_demand(db: Conn) -> None:
    old = datetime(2019, 6, 15, 12, tzinfo=UTC)
    assert partition_of(db, "cdevents", old) is None
    assert partition_of(db, "ccmessage", old) is None
    batch = [Ev("old-cd", time=old, family="cdevents"), Ev("old-cc", time=old, family="ccmessage")]
    assert ingest(db, batch) == (2, [], 0)
    cd = partition_of(db, "cdevents", old)
    cc = partition_of(db, "ccmessage", old)
    assert cd is not None
    assert cc is not None
    assert db.execute(f"SELECT id FROM collector.{cd}").fetchall() == [("old-cd",)]
    assert db.execute(f"SELECT id FROM collector.{cc}").fetchall() == [("old-cc",)]
    # Partitions follow each family's period: a month for cdevents, a day for ccmessage.
    assert partition_of(db, "cdevents", datetime(2019, 6, 1, tzinfo=UTC)) == cd
    assert partition_of(db, "ccmessage", datetime(2019, 6, 14, tzinfo=UTC)) is None


def test_a_hand_written_call_with_defaults_works(db: Conn) -> None:
    # What someone types in psql: positional arrays, NULL for what they lack, no rejections.
    row = db.execute(
        """
        SELECT * FROM collector.ingest(
            ARRAY['h1', 'h2'], ARRAY['/psql', '/psql'], ARRAY['manual', 'manual'],
            ARRAY['2026-01-02T03:04:05Z', '2026-01-02T03:04:06Z']::timestamptz[],
            ARRAY['raw', 'raw'], NULL, NULL, NULL, NULL,
            ARRAY['{"n": 1}', '{"n": 2}'], NULL, ARRAY[now(), now()], ARRAY['psql', 'psql'])
        """
    ).fetchone()
    assert row == (2, [], 0)
    rows = db.execute("SELECT id, payload, metadata FROM api.events ORDER BY id").fetchall()
    assert rows == [("h1", {"n": 1}, {}), ("h2", {"n": 2}, {})]


def test_an_empty_batch_stores_nothing(db: Conn) -> None:
    assert ingest(db, []) == (0, [], 0)
    assert count(db) == 0


# -- rejected input -------------------------------------------------------------------------------


def test_rejections_are_stored_with_their_reason(db: Conn) -> None:
    rejected = [
        Rejection("invalid JSON: unexpected character", b"{nope", "line 3", {"file": "a.jsonl"}),
        Rejection("context.id: missing", b'{"context": {}}'),
    ]
    assert ingest(db, [Ev("ok")], rejected) == (1, [], 2)
    rows = db.execute(
        "SELECT reason, location, raw, raw_size, metadata, received_via, received_at"
        " FROM api.rejected_events ORDER BY seq"
    ).fetchall()
    assert rows == [
        (
            "invalid JSON: unexpected character",
            "line 3",
            "{nope",
            5,
            {"file": "a.jsonl"},
            "psql",
            NOW,
        ),
        ("context.id: missing", None, '{"context": {}}', 15, {}, "psql", NOW),
    ]
    assert count(db) == 1


def test_rejections_alone_need_no_events(db: Conn) -> None:
    assert ingest(db, [], [Rejection("empty document", b"")]) == (0, [], 1)
    assert db.execute("SELECT raw, raw_size FROM api.rejected_events").fetchall() == [("", 0)]


# -- lookups by id --------------------------------------------------------------------------------


def test_event_by_id(db: Conn) -> None:
    ingest(db, [Ev("one", subject="x"), Ev("shared", source="/a"), Ev("shared", source="/b")])
    assert db.execute("SELECT id, subject FROM api.event('one')").fetchall() == [("one", "x")]
    shared = db.execute("SELECT source FROM api.event('shared') ORDER BY source").fetchall()
    assert shared == [("/a",), ("/b",)]
    assert db.execute("SELECT * FROM api.event('unknown')").fetchall() == []


def test_events_by_id_returns_exactly_the_known_ones(db: Conn) -> None:
    times = [NOW - timedelta(days=400), NOW - timedelta(days=40), NOW]
    ingest(db, [Ev(f"e{i}", time=t) for i, t in enumerate(times)] + [Ev("other")])
    rows = db.execute(
        "SELECT id, time FROM api.events_by_id(%s)", (["e2", "nope", "e0", "e1", "e0"],)
    ).fetchall()
    assert rows == [("e0", times[0]), ("e1", times[1]), ("e2", times[2])]  # ordered by time
    assert db.execute("SELECT * FROM api.events_by_id(%s)", ([],)).fetchall() == []
    columns = db.execute("SELECT * FROM api.events_by_id(ARRAY['e0'])").description
    view = db.execute("SELECT * FROM api.events LIMIT 0").description
    assert columns is not None
    assert view is not None
    assert [c.name for c in columns] == [c.name for c in view]


def test_events_mentioning_a_user_as_eventhistory_finds_them(db: Conn) -> None:
    # oCIS events name a user in fields that differ per event type (GetEventsForUser).
    einstein = {"idp": "https://ocis", "opaque_id": "einstein-1"}
    ingest(
        db,
        [
            Ev("old", time=NOW - timedelta(days=30), payload={"Executant": einstein}),
            Ev("upload", time=NOW - timedelta(days=2), payload={"SpaceOwner": einstein}),
            Ev("share", time=NOW - timedelta(days=1), payload={"Grantees": [["einstein-1"]]}),
            Ev("other", time=NOW - timedelta(days=1), payload={"Executant": {"opaque_id": "m"}}),
            Ev("part", time=NOW, payload={"Path": "/users/einstein-1/x", "einstein-1": 1}),
            Ev("null", time=NOW, payload={"Executant": None}),
        ],
    )
    query = "SELECT id FROM api.events_mentioning(%s, %s, %s)"
    week = (NOW - timedelta(days=7), NOW + timedelta(days=1))
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL ROLE collector_reader")
        assert db.execute(query, ("einstein-1", *week)).fetchall() == [("upload",), ("share",)]
        everything = "SELECT id FROM api.events_mentioning(%s, '-infinity')"
        assert db.execute(everything, ("einstein-1",)).fetchall() == [
            ("old",),
            ("upload",),
            ("share",),
        ]
        assert db.execute(query, (None, *week)).fetchall() == []
        assert db.execute(query, ("einstein-1", NOW, NOW)).fetchall() == []  # [from, to)


def test_lookup_by_id_probes_the_identity_key_and_one_partition_per_family(db: Conn) -> None:
    # A few thousand events over a year, three families: many partitions with rows in them.
    start = datetime(2024, 1, 1, tzinfo=UTC)
    families = ["cdevents", "cloudevents", "raw"]
    events = [
        Ev(f"e{i}", time=start + timedelta(hours=3 * i), family=families[i % 3])
        for i in range(3000)
    ]
    assert ingest(db, events)[0] == 3000
    db.execute("ANALYZE")
    wanted = ["e10", "e1500", "e2999", "unknown"]
    plan = explain_events_by_id(db, wanted)

    assert "Index Scan using event_identities_pkey on event_identities" in plan, plan
    partitions = set(re.findall(r" on (events_\w+)", plan))
    executed = {
        name
        for line in plan.splitlines()
        for name in re.findall(r" on (events_\w+)", line)
        if "never executed" not in line
    }
    # The ids span the year: every month of the three families is planned...
    assert len(partitions) >= 36, plan
    # ...and run-time pruning on each identity's time reads, per id found, at most one
    # partition per family, not every partition (as a hash join over all of them would).
    found, families_in_policy = 3, 4
    assert 0 < len(executed) <= found * families_in_policy, plan

    # Ids of one month: only that month's partitions are planned, not the year's.
    plan = explain_events_by_id(db, ["e10", "e11", "e12"])
    assert {p.rsplit("_", 1)[1] for p in re.findall(r" on (events_\w+_\d{8})", plan)} == {
        "20240101"
    }, plan


def explain_events_by_id(conn: Conn, ids: list[str]) -> str:
    """EXPLAIN ANALYZE of the query inside api.events_by_id (a function's plan is opaque), with
    the values the function computes first bound as its variables are (a custom plan)."""
    source = conn.execute(
        "SELECT prosrc FROM pg_proc WHERE oid = 'api.events_by_id(text[])'::regprocedure"
    ).fetchone()
    assert source is not None
    query = re.search(r"RETURN QUERY(.*?);\s*END", str(source[0]), re.S)
    assert query is not None
    variables = conn.execute(
        "SELECT (SELECT min(time) FROM collector.event_identities WHERE id = ANY (%(ids)s)),"
        " (SELECT max(time) FROM collector.event_identities WHERE id = ANY (%(ids)s)),"
        " (SELECT array_agg(family) FROM collector.partition_policy"
        "  WHERE identity_scope = 'global')",
        {"ids": ids},
    ).fetchone()
    assert variables is not None
    body = re.sub(r"\b(earliest|latest)\b", r"%(\1)s", query[1].replace("%", "%%"))
    body = re.sub(r"\b(ids|families)\b", r"%(\1)s::text[]", body)  # unnest needs the type
    rows = conn.execute(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + body,
        dict(zip(("earliest", "latest", "families"), variables, strict=True), ids=ids),
    ).fetchall()
    return "\n".join(line for (line,) in rows)
