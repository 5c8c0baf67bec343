"""`collector run` as a process against files and folders that misbehave: odd names, odd file
types, unreadable files, another filesystem, a replaced inbox, a file still being written, and
two collectors sharing one folder. One bad file never stops the others."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.acceptance.test_folder_ingest import count, pending_files
from tests.conftest import CollectorProcess, wait_for


def config(path: str = "inbox", extra: str = "") -> str:
    return f"""
[sources.inbox]
type = "folder"
path = "{path}"
recursive = true
settle_s = 0
poll_interval_s = 0.05
{extra}

[sinks.db]
type = "postgres"
"""


def start(
    collector_process: Any,
    database_url: str,
    toml: str | None = None,
    workdir: Path | None = None,
) -> CollectorProcess:
    proc: CollectorProcess = collector_process(
        toml or config(), env={"COLLECTOR__DATABASE__URL": database_url}, workdir=workdir
    )
    return proc.start()


def event(event_id: str) -> str:
    return json.dumps(
        {"specversion": "1.0", "id": event_id, "source": "/robust", "type": "com.example.t"}
    )


def put(folder: Path, name: str, content: str) -> Path:
    """Write under a hidden name, then rename into place (works for names of 255 bytes)."""
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / ".incoming"
    partial.write_text(content)
    os.rename(partial, target)
    return target


def alive(proc: CollectorProcess) -> bool:
    return proc.proc is not None and proc.proc.poll() is None


def stored_files(db: psycopg.Connection[Any]) -> list[str]:
    rows = db.execute("select metadata->>'file' from api.events order by 1").fetchall()
    return [r[0] for r in rows]


@contextmanager
def database_held(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """Every ingest waits until the block ends (a lock on the identity table)."""
    with psycopg.connect(database_url) as locker:
        locker.execute("LOCK TABLE collector.event_identities IN ACCESS EXCLUSIVE MODE")
        yield locker
        locker.rollback()


def ingest_waiting(db: psycopg.Connection[Any], locker: psycopg.Connection[Any]) -> bool:
    row = db.execute(
        "select count(*) from pg_stat_activity where %s = any(pg_blocking_pids(pid))",
        (locker.info.backend_pid,),
    ).fetchone()
    return row is not None and row[0] > 0


def test_long_and_undecodable_names_are_stored_and_kept(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    long = "é" * 122 + ".json"  # 249 bytes; percent-encoded it was 1,469, over the 255 limit
    deep = "ü" * 120 + "/" + "ß" * 120 + "/deep.jsonl"  # recursive: the whole path was encoded
    longest = "è" * 125 + ".json"  # 255 bytes: its report must not be longer
    bad = os.fsdecode(b"bad\xffname.json")  # not UTF-8: as odd as Linux allows
    bad_invalid = os.fsdecode(b"broken\xfe.json")
    proc = start(collector_process, database_url)
    put(inbox, long, event("long"))
    put(inbox, deep, event("deep") + "\n")
    put(inbox, longest, "{not json")
    put(inbox, bad, event("bad-name"))
    put(inbox, bad_invalid, "[1]")
    put(inbox, "plain.json", event("plain"))

    wait_for(lambda: count(db) == 4 and not pending_files(inbox), timeout=30)
    done = inbox / "done"
    assert (done / long).is_file()
    assert (done / deep).is_file()
    assert (done / bad).is_file()
    assert stored_files(db) == sorted(["bad\\xffname.json", deep, long, "plain.json"])
    rejected = db.execute("select metadata->>'file' from api.rejected_events order by 1").fetchall()
    assert [r[0] for r in rejected] == sorted(["broken\\xfe.json", longest])
    failed = inbox / "failed"
    assert (failed / bad_invalid).is_file()
    assert (failed / (bad_invalid + ".error.txt")).read_text().startswith("broken\\xfe.json: ")
    [report] = failed.glob("è*.error.txt")  # shortened to fit; the report names the file
    assert report.read_text().startswith(f"{longest}: 1 rejected")
    assert Path(str(report).removesuffix(".error.txt")).read_text() == "{not json"

    # The same long name again: its twin in done/ stays, the newcomer gets a name that fits.
    put(inbox, long, event("long-again"))
    wait_for(lambda: count(db) == 5 and not pending_files(inbox), timeout=30)
    assert len(list(done.glob("é*.json"))) == 2
    assert alive(proc)
    assert proc.stop() == 0
    assert "Traceback" not in proc.logs()


def test_done_and_failed_folders_on_another_filesystem(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary folder")
    other = Path(tempfile.mkdtemp(dir=shm))
    try:
        inbox = tmp_path / "inbox"
        extra = f'done_dir = "{other}/done"\nfailed_dir = "{other}/failed"'
        proc = start(collector_process, database_url, config(extra=extra))
        put(inbox, "sub/good.json", event("good"))
        put(inbox, "bad.json", "{nope")

        wait_for(lambda: count(db) == 1 and not pending_files(inbox), timeout=30)
        wait_for(lambda: (other / "failed" / "bad.json").exists(), timeout=30)
        assert (other / "done" / "sub" / "good.json").read_text() == event("good")
        assert (other / "failed" / "bad.json").read_text() == "{nope"
        assert (other / "failed" / "bad.json.error.txt").is_file()
        assert not [p for p in other.rglob(".*")]  # no temporary copy left behind
        assert not list((inbox / ".processing").iterdir())
        assert alive(proc)
        assert proc.stop() == 0
        # Nothing left claimed, so nothing is read twice at the next start.
        again = start(collector_process, database_url, config(extra=extra))
        put(inbox, "after.json", event("after"))
        wait_for(lambda: count(db) == 2, timeout=30)
        assert again.stop() == 0
        assert count(db, "select count(*) from api.duplicates") == 0
    finally:
        shutil.rmtree(other)


def test_unreadable_files_and_folders_are_reported_and_the_rest_is_read(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("as root, without setpriv to drop the rights to read anything")
    if os.geteuid() == 0 and str(conninfo_to_dict(database_url).get("host", "")).startswith("/"):
        # The embedded server's socket is in a folder private to its own user: root without
        # its rights to read anything cannot reach it (COLLECTOR_TEST_DATABASE_URL can).
        pytest.skip("as root with the embedded server: its private socket folder is unreachable")
    inbox = tmp_path / "inbox"
    put(inbox, "secret.json", event("secret"))
    put(inbox, "closed/inside.json", event("inside"))
    put(inbox, "open.json", event("open"))
    os.chmod(inbox / "secret.json", 0)
    os.chmod(inbox / "closed", 0)
    proc: CollectorProcess = collector_process(
        config(), env={"COLLECTOR__DATABASE__URL": database_url}
    )
    command = [sys.executable, "-m", "collector", "run"]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    proc.proc = subprocess.Popen(
        command, cwd=tmp_path, env=proc.env, stdout=subprocess.DEVNULL, stderr=proc.log.open("ab")
    )
    try:
        wait_for(lambda: count(db) == 1, timeout=30)
        wait_for(lambda: (inbox / "failed" / "secret.json.error.txt").exists(), timeout=30)
        report = (inbox / "failed" / "secret.json.error.txt").read_text()
        assert report == "secret.json: cannot be read: Permission denied; nothing stored\n"
        assert stored_files(db) == ["open.json"]
        time.sleep(0.5)  # ten polls: the closed folder is logged once, not each time
        logs = proc.logs()
        assert logs.count('"folder_unreadable"') == 1
        assert str(inbox / "closed") in logs
        assert alive(proc)

        os.chmod(inbox / "closed", 0o755)  # fixed: read at the next poll
        wait_for(lambda: count(db) == 2, timeout=30)
        assert proc.stop() == 0
    finally:
        os.chmod(inbox / "closed", 0o755)


def test_symbolic_links_fifos_and_the_like(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    put(tmp_path / "ext", "target.json", event("linked"))
    (inbox / "link.json").symlink_to("../ext/target.json")
    (inbox / "broken.json").symlink_to("../ext/missing.json")
    os.mkfifo(inbox / "pipe.json")
    put(inbox, "ok.json", event("ok"))
    proc = start(collector_process, database_url)

    failed = inbox / "failed"
    wait_for(lambda: count(db) == 2, timeout=30)
    wait_for(lambda: len(list(failed.glob("*.error.txt"))) == 2, timeout=30)
    assert stored_files(db) == ["link.json", "ok.json"]
    assert (inbox / "done" / "link.json").is_symlink()  # the link moves; its target stays
    assert (tmp_path / "ext" / "target.json").read_text() == event("linked")
    assert (failed / "broken.json").is_symlink()
    assert "symbolic link to" in (failed / "broken.json.error.txt").read_text()
    assert "not a regular file" in (failed / "pipe.json.error.txt").read_text()
    assert proc.logs().count('"file_unreadable"') == 2
    assert not list((inbox / ".processing").iterdir())
    assert proc.stop(timeout=30) == 0  # nothing hangs on the FIFO


def test_two_collectors_never_take_each_others_files(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    toml = config(path=str(inbox))
    first = start(collector_process, database_url, toml, workdir=tmp_path / "first")
    wait_for(lambda: "folder_watching" in first.logs(), timeout=30)

    with database_held(database_url) as locker:
        put(inbox, "held.json", event("held"))
        wait_for(lambda: ingest_waiting(db, locker), timeout=30)  # claimed, being committed
        # A collector starting now finds the claim: its owner is alive, so it is not taken.
        second = start(collector_process, database_url, toml, workdir=tmp_path / "second")
        wait_for(lambda: "folder_watching" in second.logs(), timeout=30)

    wait_for(lambda: count(db) == 1 and not pending_files(inbox), timeout=30)
    put(inbox, "later.json", event("later"))
    wait_for(lambda: count(db) == 2 and not pending_files(inbox), timeout=30)
    assert "held.json" not in second.logs()
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["held.json", "later.json"]
    assert count(db, "select count(*) from api.duplicates") == 0
    assert alive(first)
    assert alive(second)
    assert first.stop() == 0
    assert second.stop() == 0


def test_an_inbox_replaced_or_deleted_while_running(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    proc = start(collector_process, database_url)
    put(inbox, "a.json", event("a"))
    wait_for(lambda: count(db) == 1, timeout=30)

    inbox.rename(tmp_path / "inbox.old")
    inbox.mkdir()
    put(inbox, "r.json", event("r"))
    wait_for(lambda: count(db) == 2 and (inbox / "done" / "r.json").exists(), timeout=30)
    assert "folder_recreated" in proc.logs()

    shutil.rmtree(inbox)
    wait_for(lambda: "folder_missing" in proc.logs(), timeout=30)
    time.sleep(0.5)  # ten polls of a missing inbox
    inbox.mkdir()
    put(inbox, "back.json", event("back"))
    wait_for(lambda: count(db) == 3 and (inbox / "done" / "back.json").exists(), timeout=30)
    assert proc.logs().count('"folder_missing"') == 1
    assert alive(proc)
    assert proc.stop() == 0


def test_lines_appended_while_a_file_is_read_are_read_too(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    proc = start(collector_process, database_url)
    wait_for(lambda: "folder_watching" in proc.logs(), timeout=30)

    def line(n: int) -> str:
        return event(f"sw-{n}") + "\n"

    with database_held(database_url) as locker:
        # A writer that keeps the file open after it appeared: claimed after its first line.
        partial = inbox / "slow.jsonl.tmp"
        with partial.open("w") as writer:
            writer.write(line(1))
            writer.flush()
            partial.rename(inbox / "slow.jsonl")
            wait_for(lambda: ingest_waiting(db, locker), timeout=30)  # line 1 is being stored
            for n in range(2, 7):
                writer.write(line(n))
            writer.write(event("sw-7"))  # the last line without its newline
            writer.flush()

    wait_for(lambda: (inbox / "done" / "slow.jsonl").exists(), timeout=30)
    ids = [r[0] for r in db.execute("select id from api.events order by id").fetchall()]
    assert ids == [f"sw-{n}" for n in range(1, 8)]
    assert "file_grew_while_read" in proc.logs()
    assert proc.stop() == 0
