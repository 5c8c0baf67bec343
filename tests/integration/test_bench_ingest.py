"""`collector bench ingest` end to end on a small workload: it runs, checks its counts and prints
its figures. No timing is asserted: the figures are whatever this machine gives.
"""

from __future__ import annotations

import re
import subprocess
import sys


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it (in-process, its logging setup would outlive the test)."""
    return subprocess.run(
        [sys.executable, "-m", "collector", "bench", "ingest", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bench_ingest_prints_figures_for_both_paths(pg_admin_url: str) -> None:
    result = bench(
        "-n", "1500", "--runs", "1", "--files", "3", "--seed", "5",
        "--database-url", pg_admin_url, "--timeout", "120",
    )  # fmt: skip

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^bench ingest: 1500 CDEvents, \d+ B average", out, re.M)
    assert re.search(r"^run 1: baseline \d+ events/s .*; collector \d+ events/s .*ratio", out, re.M)
    assert re.search(r"^baseline raw COPY, one transaction: \d+ events/s", out, re.M)
    assert re.search(r"^collector folder → PostgreSQL: \d+ events/s", out, re.M)
    assert re.search(r"^ratio collector/baseline: \d+\.\d\d", out, re.M)
    assert re.search(r"^collector peak RSS: [1-9]\d* MB", out, re.M)


def test_bench_ingest_refuses_a_server_it_cannot_reach() -> None:
    result = bench(
        "-n", "10", "--runs", "1",
        "--database-url", "postgresql://nobody@127.0.0.1:1/postgres?connect_timeout=2",
    )  # fmt: skip

    assert result.returncode == 1
    assert "collector: bench: cannot connect" in result.stderr
