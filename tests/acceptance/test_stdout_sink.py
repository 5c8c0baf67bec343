"""`collector run | reader` as processes: a reader that is slow, never reads, or goes away."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import psycopg

from tests.acceptance.test_folder_ingest import count, drop, pending_files
from tests.conftest import CollectorProcess, wait_for

SOURCE = """
[sources.inbox]
type = "folder"
path = "inbox"
settle_s = 0
poll_interval_s = 0.05
"""

WITH_DATABASE = (
    SOURCE
    + """
[sinks.db]
type = "postgres"

[sinks.out]
type = "stdout"
buffer = 1000
"""
)


def start_piped(collector_process: Any, config: str, env: dict[str, str]) -> CollectorProcess:
    """`collector run` with its stdout a pipe that the test reads (or not) as it likes."""
    proc: CollectorProcess = collector_process(config, env=env)
    proc.proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "run"],
        cwd=proc.workdir,
        env=proc.env,
        stdout=subprocess.PIPE,
        stderr=proc.log.open("ab"),
    )
    wait_for(lambda: "collector_started" in proc.logs(), timeout=60)
    return proc


def jsonl(prefix: str, count: int) -> str:
    return "".join(
        json.dumps(
            {
                "specversion": "1.0",
                "id": f"{prefix}-{i}",
                "source": "/stdout-test",
                "type": "com.example.t",
                "data": {"pad": "x" * 200},
            }
        )
        + "\n"
        for i in range(count)
    )


def stdout_of(proc: CollectorProcess) -> IO[bytes]:
    assert proc.proc is not None
    assert proc.proc.stdout is not None
    return proc.proc.stdout


def logged(proc: CollectorProcess, event: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in proc.logs().splitlines() if line.startswith("{"))
    return [line for line in lines if line["event"] == event]


def event_ids(output: bytes) -> list[str]:
    """The ids of the lines, each line parsed on its own (as `jq` would)."""
    assert output.endswith(b"\n")
    return [json.loads(line)["id"] for line in output.splitlines()]


def test_a_reader_that_does_not_read_yet_holds_up_nothing_and_loses_nothing_unsaid(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    proc = start_piped(collector_process, WITH_DATABASE, {"COLLECTOR__DATABASE__URL": database_url})

    # Far more than the pipe holds, and than the sink's buffer: nobody reads.
    drop(inbox, "many.jsonl", jsonl("many", 5_000))
    wait_for(lambda: count(db) == 5_000 and not pending_files(inbox), timeout=60)
    drop(inbox, "late.json", jsonl("late", 1))  # a new file is still picked up
    wait_for(lambda: count(db) == 5_001 and not pending_files(inbox), timeout=60)

    # A signal while the stdout sink waits for its reader; then the reader reads.
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    output = stdout_of(proc).read()
    assert proc.proc.wait(60) == 0

    written = event_ids(output)
    assert len(set(written)) == len(written)
    dropped = sum(line["events"] for line in logged(proc, "optional_sink_dropped"))
    assert dropped > 0
    assert len(written) + dropped == 5_001


def test_a_reader_that_never_reads_lets_shutdown_finish_with_whole_lines(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    config = WITH_DATABASE + "\n[pipeline]\nshutdown_timeout_s = 1\n"
    proc = start_piped(collector_process, config, {"COLLECTOR__DATABASE__URL": database_url})
    drop(inbox, "many.jsonl", jsonl("many", 5_000))
    wait_for(lambda: count(db) == 5_000 and not pending_files(inbox), timeout=60)

    assert proc.stop(signal.SIGTERM) == 0  # with stdout full, nobody reading
    written = event_ids(stdout_of(proc).read())

    assert len(set(written)) == len(written)
    dropped = sum(line["events"] for line in logged(proc, "optional_sink_dropped"))
    unwritten = sum(line["events"] for line in logged(proc, "stdout_sink_unwritten"))
    assert len(written) + dropped + unwritten == 5_000


def test_a_required_stdout_whose_reader_goes_away_stops_collector(
    collector_process: Any, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    config = SOURCE + '\n[sinks.out]\ntype = "stdout"\nrequired = true\n'
    drop(inbox, "many.jsonl", jsonl("many", 5_000))
    proc = start_piped(collector_process, config, {})

    out = stdout_of(proc)
    assert json.loads(out.readline())["id"] == "many-0"
    out.close()  # as `collector run | head -1` does

    assert proc.proc is not None
    assert proc.proc.wait(60) == 1  # by itself
    assert "collector: sink out: stdout closed by the reader\n" in proc.logs()
    assert len(logged(proc, "required_sink_closed")) == 1
    assert not logged(proc, "batch_failed")
    assert not logged(proc, "file_done")  # not acknowledged: read again after a restart
    assert not list((inbox / "done").iterdir())


def test_an_optional_stdout_whose_reader_goes_away_is_switched_off(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    proc = start_piped(collector_process, WITH_DATABASE, {"COLLECTOR__DATABASE__URL": database_url})
    drop(inbox, "first.jsonl", jsonl("first", 2_000))

    out = stdout_of(proc)
    assert json.loads(out.readline())["id"] == "first-0"
    out.close()
    wait_for(lambda: count(db) == 2_000 and not pending_files(inbox), timeout=60)
    drop(inbox, "second.jsonl", jsonl("second", 2_000))
    wait_for(lambda: count(db) == 4_000 and not pending_files(inbox), timeout=60)

    assert proc.stop() == 0
    [closed] = logged(proc, "optional_sink_closed")
    assert closed["error"] == "sink out: stdout closed by the reader"
    assert not logged(proc, "optional_sink_failed")
