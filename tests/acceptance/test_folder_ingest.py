"""`collector run` as a process: files dropped into a folder end up in `api.events`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import REPO, SPEC, CollectorProcess, wait_for

FOLDER_CONFIG = """
[sources.inbox]
type = "folder"
path = "inbox"
recursive = true
settle_s = 0
poll_interval_s = 0.05

[sinks.db]
type = "postgres"
"""


def start(collector_process: Any, database_url: str, extra: str = "") -> CollectorProcess:
    proc: CollectorProcess = collector_process(
        FOLDER_CONFIG + extra, env={"COLLECTOR__DATABASE__URL": database_url}
    )
    return proc.start()


def drop(inbox: Path, name: str, content: str | bytes) -> Path:
    """Write the way the docs tell users to: a *.tmp file, renamed when complete."""
    target = inbox / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".tmp")
    if isinstance(content, str):
        partial.write_text(content)
    else:
        partial.write_bytes(content)
    os.rename(partial, target)
    return target


def count(db: psycopg.Connection[Any], sql: str = "select count(*) from api.events") -> int:
    row = db.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def pending_files(inbox: Path) -> list[Path]:
    """Files not yet finished: still in the inbox or claimed. (os.walk skips what vanishes
    while it looks: claim folders come and go.)"""
    found: list[Path] = []
    for folder, subfolders, names in os.walk(inbox):
        if folder == str(inbox):
            subfolders[:] = [f for f in subfolders if f not in ("done", "failed")]
        found.extend(Path(folder, name) for name in names)
    return found


def test_conformance_examples_ingest_with_type_subject_and_predicate(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    expected: dict[tuple[str, str, str], dict[str, Any]] = {}
    files = 0
    for version in ("v0.4.1", "v0.5.1"):
        for path in sorted((SPEC / version / "conformance").glob("*.json")):
            doc = json.loads(path.read_text())
            ctx = doc["context"]
            expected[(ctx["source"], ctx["type"], ctx["id"])] = doc
            drop(inbox, f"{version}/{path.name}", path.read_text())
            files += 1
    proc = start(collector_process, database_url)

    wait_for(lambda: count(db) == len(expected) and not pending_files(inbox), timeout=60)
    rows = db.execute(
        "select source, type, id, subject, subject_type, predicate, type_version, family,"
        " received_via, payload from api.events"
    ).fetchall()
    assert len(rows) == len(expected)
    for source, type_, id_, subject, subject_type, predicate, version, family, via, payload in rows:
        doc = expected[(source, type_, id_)]
        _, _, want_subject, want_predicate, want_version = type_.split(".", 4)
        assert (subject_type, predicate, version) == (want_subject, want_predicate, want_version)
        assert subject == doc["subject"]["id"]
        assert family == "cdevents"
        assert via == "inbox"
        assert payload == doc
    assert count(db, "select count(*) from api.rejected_events") == 0
    assert len(list((inbox / "done").rglob("*.json"))) == files

    # A second copy of the same files adds no rows: every event is a duplicate.
    for version in ("v0.4.1", "v0.5.1"):
        for path in sorted((SPEC / version / "conformance").glob("*.json")):
            drop(inbox, f"again/{version}/{path.name}", path.read_text())
    wait_for(lambda: not pending_files(inbox), timeout=60)
    assert count(db) == len(expected)
    assert len(list((inbox / "done").rglob("*.json"))) == 2 * files
    assert not list((inbox / "failed").rglob("*"))
    assert proc.stop() == 0
    assert '"duplicates": 1' in proc.logs()


def test_bad_files_go_to_failed_with_reasons_and_rejected_rows(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    good = json.loads((SPEC / "v0.5.1" / "conformance" / "build_started.json").read_text())
    no_id = json.loads(json.dumps(good))
    del no_id["context"]["id"]
    unknown_type = json.loads(json.dumps(good))
    unknown_type["context"]["type"] = "dev.cdevents.spaceship.launched.0.1.0"
    mixed = "\n".join(
        [json.dumps(good), "{not json", "", json.dumps(unknown_type), json.dumps([1])]
    )
    proc = start(collector_process, database_url)
    drop(inbox, "broken.json", '{"context": {"id": ')
    drop(inbox, "no-id.json", json.dumps(no_id))
    drop(inbox, "unknown-type.json", json.dumps(unknown_type))
    drop(inbox, "mixed.jsonl", mixed)

    wait_for(lambda: not pending_files(inbox), timeout=30)
    failed = inbox / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [
        "broken.json",
        "broken.json.error.txt",
        "mixed.jsonl",
        "mixed.jsonl.error.txt",
        "no-id.json",
        "no-id.json.error.txt",
        "unknown-type.json",
        "unknown-type.json.error.txt",
    ]
    assert "invalid JSON" in (failed / "broken.json.error.txt").read_text()
    assert "context.id: missing" in (failed / "no-id.json.error.txt").read_text()
    assert (
        "context.type 'dev.cdevents.spaceship.launched.0.1.0'"
        in (failed / "unknown-type.json.error.txt").read_text()
    )
    report = (failed / "mixed.jsonl.error.txt").read_text()
    assert "line 2: invalid JSON" in report
    assert "line 4: context.type" in report
    assert "line 5: an event must be a JSON object, not an array" in report

    # The good line of the mixed file is stored; nothing invalid vanished.
    assert count(db) == 1
    rejected = db.execute(
        "select reason, location, raw, received_via, metadata->>'file'"
        " from api.rejected_events order by metadata->>'file', location"
    ).fetchall()
    assert [(r[4], r[1]) for r in rejected] == [
        ("broken.json", None),
        ("mixed.jsonl", "line 2"),
        ("mixed.jsonl", "line 4"),
        ("mixed.jsonl", "line 5"),
        ("no-id.json", None),
        ("unknown-type.json", None),
    ]
    assert rejected[0][2] == '{"context": {"id": '
    assert all(r[3] == "inbox" for r in rejected)
    assert proc.stop() == 0


def test_kill_9_while_ingesting_then_restart_stores_every_event_exactly_once(
    collector_process: Any, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    files, per_file = 200, 50
    total = files * per_file
    template = json.loads((SPEC / "v0.5.1" / "conformance" / "taskrun_finished.json").read_text())
    extra = "\n[pipeline]\nbatch_size = 100\nlinger_ms = 5\n"
    proc = start(collector_process, database_url, extra)
    for f in range(files):
        lines = []
        for i in range(per_file):
            event = json.loads(json.dumps(template))
            event["context"]["id"] = f"evt-{f:03d}-{i:02d}"
            event["subject"]["id"] = f"task-{f:03d}"
            lines.append(json.dumps(event))
        drop(inbox, f"batch-{f:03d}.jsonl", "\n".join(lines) + "\n")

    wait_for(lambda: count(db) >= total // 10, timeout=60)
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    stored_at_kill = count(db)
    assert stored_at_kill < total, "ingest finished before the kill: the test proves nothing"

    again = start(collector_process, database_url, extra)
    wait_for(lambda: count(db) == total and not pending_files(inbox), timeout=120)
    assert count(db, "select count(distinct (source, type, id)) from api.events") == total
    assert not list((inbox / ".processing").iterdir())
    assert not list((inbox / "failed").iterdir())
    assert len(list((inbox / "done").iterdir())) == files
    assert count(db, "select count(*) from api.rejected_events") == 0
    assert again.stop() == 0


def test_embedded_defaults_with_no_configuration(tmp_path: Path) -> None:
    """The quick start: no file, no database: embedded PostgreSQL and the `inbox` folder."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    os.chmod(workdir, 0o700)
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in [workdir, *workdir.parents]}
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    env["COLLECTOR__HTTP__PORT"] = "0"  # the default webhook source: any free port
    shutil.copytree(REPO / "samples" / "inbox", workdir / "inbox")
    log = (workdir / "collector.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "run"], cwd=workdir, env=env, stderr=log
    )
    try:
        url = subprocess.run(
            [sys.executable, "-m", "collector", "db", "url"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

        def stored() -> int:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    return count(conn)
            except psycopg.Error:
                return 0

        wait_for(lambda: stored() == 6, timeout=60)
        assert sorted(p.name for p in (workdir / "inbox" / "done").iterdir()) == [
            "delivery.jsonl",
            "git-push.cloudevent.json",
        ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    # Starting the embedded server must not open up anybody's folders.
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in before} == before
