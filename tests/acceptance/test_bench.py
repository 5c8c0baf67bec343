"""`collector bench ingest` as a process: it prints figures and a ratio, and cleans up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg


def test_bench_ingest_prints_events_per_second_and_the_ratio(
    pg_admin_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    result = subprocess.run(
        [sys.executable, "-m", "collector", "bench", "ingest", "--events", "500"],
        cwd=tmp_path,
        env={**env, "COLLECTOR__DATABASE__URL": pg_admin_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "events: 500, batch size 2000"
    assert re.fullmatch(r"raw COPY: +[\d,]+ events/s \([\d.]+ s\)", lines[1]), lines
    assert re.fullmatch(r"collector\.ingest: +[\d,]+ events/s \([\d.]+ s\)", lines[2]), lines
    assert re.fullmatch(r"ratio: [\d.]+", lines[3]), lines
    with psycopg.connect(pg_admin_url) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'collector\\_bench\\_%'"
        ).fetchall()
    assert left == []
