"""Filters of api.events on type, source and subject are served by indexes.

A month partition gets a few thousand events (many types, sources and subjects), is analysed,
and every filter users type must read it through the index made for that column: no
sequential scan of the partition, whatever the planner's other choices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

EVENTS = 6000
PARTITION = "events_cloudevents_20240501"

LOAD = """
SELECT stored FROM collector.ingest(
    ARRAY(SELECT 'e' || g FROM generate_series(1, %(n)s) g),
    ARRAY(SELECT 'https://ci.example/' || (g %% 60) FROM generate_series(1, %(n)s) g),
    ARRAY(SELECT 'com.example.type-' || (g %% 120) FROM generate_series(1, %(n)s) g),
    ARRAY(SELECT timestamptz '2024-05-01' + g * interval '7 minutes'
          FROM generate_series(1, %(n)s) g),
    ARRAY(SELECT 'cloudevents' FROM generate_series(1, %(n)s) g),
    ARRAY(SELECT 'subject-' || (g %% 1500) FROM generate_series(1, %(n)s) g),
    NULL, NULL, NULL,
    ARRAY(SELECT json_build_object('n', g, 'note', repeat('x', 200))::text
          FROM generate_series(1, %(n)s) g),
    NULL,
    ARRAY(SELECT now() FROM generate_series(1, %(n)s) g),
    ARRAY(SELECT 'psql' FROM generate_series(1, %(n)s) g))
"""

FILTERS = {
    "type and time range": (
        "type = 'com.example.type-7' AND time >= '2024-05-10' AND time < '2024-05-12'",
        "type_time",
    ),
    "type alone": ("type = 'com.example.type-7'", "type_time"),
    "source and time range": (
        "source = 'https://ci.example/3' AND time >= '2024-05-10' AND time < '2024-05-20'",
        "source_time",
    ),
    "source alone": ("source = 'https://ci.example/3'", "source_time"),
    "subject, ordered by time": ("subject = 'subject-42' ORDER BY time", "subject_time"),
    "subject and time range": (
        "subject = 'subject-42' AND time > '2024-05-02' AND time < '2024-06-01'",
        "subject_time",
    ),
}


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_filters_of_api_events_use_their_index(db: Conn) -> None:
    # One load for every filter: loading and analysing is most of this test's time.
    assert db.execute(LOAD, {"n": EVENTS}).fetchone() == (EVENTS,)
    db.execute("ANALYZE collector.events")
    for name, (where, index) in FILTERS.items():
        row = db.execute(f"EXPLAIN (FORMAT JSON) SELECT * FROM api.events WHERE {where}").fetchone()
        assert row is not None
        plan = list(nodes(row[0][0]["Plan"]))
        on_partition = [n for n in plan if n.get("Relation Name") == PARTITION]
        assert on_partition, (name, plan)
        assert all(n["Node Type"] != "Seq Scan" for n in on_partition), (name, on_partition)
        used = {n.get("Index Name") for n in plan}
        assert f"{PARTITION}_{index}_idx" in used, (name, used)

    # And they answer correctly. Event g (1..6000) is at 7g minutes after May 1 with type
    # g % 120, source g % 60, subject g % 1500: May 10-12 holds g 1852..2262 (type-7: 1927,
    # 2047, 2167), May 10-20 g 1852..3908 (source 3: 1863..3903 by 60, 35 of them), and
    # subject 42 is g 42, 1542, 3042, 4542, the first before May 2.
    counts = {
        name: db.execute(
            f"SELECT count(*) FROM api.events WHERE {where.split(' ORDER BY')[0]}"
        ).fetchone()
        for name, (where, _) in FILTERS.items()
    }
    assert counts == {
        "type and time range": (3,),
        "type alone": (50,),
        "source and time range": (35,),
        "source alone": (100,),
        "subject, ordered by time": (4,),
        "subject and time range": (3,),
    }
