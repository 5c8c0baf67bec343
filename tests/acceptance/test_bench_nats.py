"""`collector bench nats` runs end to end on a small workload (figures are not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.nats_fixtures import NatsServer


def test_bench_nats_prints_rates_ratio_and_memory(
    pg_admin_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector",
            "bench",
            "nats",
            "--events",
            "300",
            "--runs",
            "1",
            "--database-url",
            pg_admin_url,
            "--nats-url",
            nats_server.url,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("collector bench nats: 300 CDEvents")
    assert lines[1].startswith("server: PostgreSQL")
    assert lines[2].startswith("client: Python")
    assert re.fullmatch(r"nats: \S+, (nats-server pid \d+|CPU not measured)", lines[3])
    assert re.fullmatch(
        r"run 1: COPY [\d,]+ events/s, collector [\d,]+ events/s, ratio \d+\.\d\d \(.*\)", lines[4]
    )
    assert re.fullmatch(
        r"median: COPY [\d,]+ events/s, collector [\d,]+ events/s, ratio \d+\.\d\d; "
        r"collector peak RSS [\d,]+ MiB",
        lines[5],
    )
    figure = r"([\d,]+\.\d µs|not measured)"
    assert re.fullmatch(
        rf"CPU per event \(median\): COPY: server {figure}; collector run: collector {figure}, "
        rf"server {figure}, nats-server {figure}, publisher and polling {figure}",
        lines[6],
    )
