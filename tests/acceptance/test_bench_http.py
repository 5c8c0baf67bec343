"""`collector bench http` end to end on a small workload, as a user runs it: both scenarios,
their ratios, and the check of every acknowledged id. No timing is asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_bench_http_prints_both_scenarios_ratios_and_the_verification(
    pg_admin_url: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "collector", "bench", "http",
            "-n", "300", "--runs", "1", "--warmup", "0", "--connections", "8", "--batch", "50",
            "--seed", "3",
            "--database-url", pg_admin_url, "--timeout", "120",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^bench http: 300 CDEvents, \d+ B average, seed 3; .*8 keep-alive", out, re.M)
    assert re.search(r"^client: .*2? ?cores shared by the load client", out, re.M)
    run_a = re.search(r"^run 1 \(a\) single events: empty app \d+ req/s .*$", out, re.M)
    run_b = re.search(r"^run 1 \(b\) 50-event batches: COPY \d+ events/s .*$", out, re.M)
    assert run_a, out
    assert run_b, out
    for line in (run_a[0], run_b[0]):
        assert re.search(r"collector \d+ events/s, \d+ req/s .*client \d+\.\d s; peak RSS", line)
        assert re.search(r"ratio \d+\.\d\d; verified: 300 acknowledged ids stored once", line)
    assert re.search(
        r"^\(a\) single-event POSTs, durable acks, 8 connections: empty app \d+ req/s, "
        r"collector \d+ events/s \(medians\); ratio \d+\.\d{3} \(goal ≥ 0\.4: (not )?met\)",
        out,
        re.M,
    )
    assert re.search(
        r"^\(b\) 50-event batch POSTs: raw COPY \d+ events/s, collector \d+ events/s = \d+ "
        r"req/s \(medians\); ratio \d+\.\d{3} \(goal ≥ 0\.6: (not )?met\)",
        out,
        re.M,
    )
    assert re.search(r"^CPU per event \(median\): \(a\) empty app: server [\d.]+ µs", out, re.M)
    assert re.search(r"^CPU per event \(median\): \(b\) COPY: PostgreSQL", out, re.M)
    assert re.search(
        r"^collector peak RSS \(max\): \(a\) [1-9]\d* MB, \(b\) [1-9]\d* MB", out, re.M
    )
    assert "each acknowledged id in api.events exactly once" in out
