"""`collector bench api` end to end on a small workload, and its coverage of schema `api`: a new
view or function without a timed query fails here. No timing is asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from collector import bench_api
from collector.bench_api import timed_queries


def api_objects(db: psycopg.Connection[Any]) -> set[str]:
    """Every view and function of schema api, from the catalog."""
    rows = db.execute(
        """
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'api'::regnamespace AND c.relkind IN ('v', 'm', 'r', 'p', 'f')
        UNION
        SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace
        """
    ).fetchall()
    return {name for (name,) in rows}


def test_every_api_object_has_a_timed_query(db: psycopg.Connection[Any]) -> None:
    objects = api_objects(db)
    assert {"events", "pipeline_runs", "dora_lead_time_series", "jobs"} <= objects
    queried = {
        name for query in timed_queries() for name in re.findall(r"\bapi\.(\w+)", query.text)
    }
    assert objects - queried == set(), "api objects without a query in sql/bench_api.sql"
    assert queried - objects == set(), "queries of objects that do not exist"


def test_bench_api_times_every_query_with_rows(pg_admin_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "collector", "bench", "api", "-n", "5000", "--days", "31",
            "--runs", "1", "--seed", "3", "--database-url", pg_admin_url,
            "--explain", "dora_lead_time",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(
        r"^bench api: 5,000 events \(\d[\d,]* CDEvents of 200 services, \d[\d,]* ClusterCockpit "
        r"events and logs\) and [1-9]\d* invalid inputs and [1-9]\d* replays over 31 days",
        out,
        re.M,
    )
    # Fewer after the default retention dropped the oldest ClusterCockpit events.
    assert re.search(
        r"^database: [1-9][\d,]* events, [1-9]\d* rejected, [1-9]\d* duplicates, ", out, re.M
    )
    rows = {
        m["name"]: int(m["rows"])
        for m in re.finditer(
            r"^(?P<name>\w+) +[\d.]+ ms +[\d.]+ +[\d.]+ +(?P<rows>\d+)  (ok|MISS)$", out, re.M
        )
    }
    names = [query.name for query in timed_queries()]
    assert list(rows) == names
    # The generated data reaches every view and function within the window.
    assert [name for name, n in rows.items() if n == 0] == []
    assert re.search(rf"^goal < 100 ms \(median\): met by \d+ of {len(names)} queries$", out, re.M)
    assert "EXPLAIN (ANALYZE, BUFFERS) dora_lead_time:" in out
    assert re.search(r"Execution Time: [\d.]+ ms", out)


def test_a_kept_database_is_reused_only_when_loaded_the_same_way(
    pg_admin_url: str, database_url: str
) -> None:
    database = str(conninfo_to_dict(database_url)["dbname"])
    stamp = bench_api._stamp(5000, 3, 31)
    assert bench_api._kept_end(pg_admin_url, database, stamp) is None  # never stamped
    end = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    bench_api._set_stamp(pg_admin_url, database, {**stamp, "end": end.isoformat()})

    assert bench_api._kept_end(pg_admin_url, database, stamp) == end
    for other in (
        bench_api._stamp(5001, 3, 31),
        bench_api._stamp(5000, 4, 31),
        bench_api._stamp(5000, 3, 60),
        {**stamp, "migrations": "0" * 16},  # loaded with other migrations
        {**stamp, "workload": bench_api.WORKLOAD_VERSION + 1},  # other generated data
    ):
        assert bench_api._kept_end(pg_admin_url, database, other) is None, other
