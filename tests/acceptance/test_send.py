"""`collector send` as a user runs it, against `collector run` as a process over a real socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import SPEC, CollectorProcess, wait_for

TOKEN = "ci-token-s3cret"
HMAC_SECRET = "hmac-s3cret"
CONFIG = f"""
[http]
port = 0

[sources.ci]
type = "http"
auth = {{ type = "token", token = "{TOKEN}" }}

[sources.github]
type = "http"
auth = {{ type = "hmac", secrets = ["{HMAC_SECRET}"] }}

[sources.signed64]
type = "http"
auth = {{ type = "hmac", secrets = ["{HMAC_SECRET}"], header = "X-Signature", prefix = "", \
encoding = "base64" }}

[sources.cc]
type = "http"
format = "lineprotocol"

[sinks.db]
type = "postgres"
"""
CONFORMANCE = SPEC / "v0.5.1" / "conformance"


@pytest.fixture
def collector_url(collector_process: Any, database_url: str) -> str:
    """The base URL of a running `collector run` with the sources above."""
    proc: CollectorProcess = collector_process(
        CONFIG, env={"COLLECTOR__DATABASE__URL": database_url}
    ).start()

    def http_listening() -> int | None:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            pytest.fail(f"collector run exited {proc.proc.returncode}:\n{proc.logs()}")
        for line in proc.logs().splitlines():
            if line.startswith("{") and '"http_listening"' in line:
                return int(json.loads(line)["port"])
        return None

    return f"http://127.0.0.1:{wait_for(http_listening)}"


def send(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    return subprocess.run(
        [sys.executable, "-m", "collector", "send", *args],
        input=stdin,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "select id, source, type, family, received_via from api.events order by seq"
    ).fetchall()


def test_a_cdevent_lands_in_api_events(
    collector_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    path = CONFORMANCE / "pipelinerun_queued.json"
    context = json.loads(path.read_text())["context"]
    (tmp_path / "token").write_text(TOKEN + "\n")
    result = send(
        "--data",
        f"@{path}",
        "--url",
        f"{collector_url}/webhook/ci",
        "--token-file",
        str(tmp_path / "token"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accepted": 1, "duplicates": 0, "ids": [context["id"]]}
    assert result.stderr == ""
    assert stored(db) == [(context["id"], context["source"], context["type"], "cdevents", "ci")]


def test_ndjson_from_stdin_with_the_token_from_the_environment(
    collector_url: str, db: psycopg.Connection[Any]
) -> None:
    docs = [
        json.loads((CONFORMANCE / f"taskrun_{p}.json").read_text()) for p in ("started", "finished")
    ]
    ndjson = "".join(json.dumps(doc) + "\n" for doc in docs)
    env = {"COLLECTOR_SEND_URL": f"{collector_url}/webhook/ci", "COLLECTOR_SEND_TOKEN": TOKEN}
    result = send("-d", "@-", stdin=ndjson, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accepted"] == 2
    assert sorted(row[2] for row in stored(db)) == sorted(d["context"]["type"] for d in docs)


def test_line_protocol_takes_the_cluster_from_the_query(
    collector_url: str, db: psycopg.Connection[Any]
) -> None:
    lines = (
        'start_job,hostname=f0101,type=node event="{\\"jobId\\":123}" 1700000000\n'
        "cpu_load,hostname=f0101 value=0.5 1700000000\n"
    )
    result = send("-d", lines, "--url", f"{collector_url}/api/write?cluster=fritz")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["accepted"], answer["metrics_skipped"]) == (1, 1)
    [(_, source, type_, family, via)] = stored(db)
    assert (source, type_, family, via) == (
        "/clusters/fritz/hosts/f0101",
        "org.clustercockpit.event.start_job",
        "ccmessage",
        "cc",
    )


def test_a_wrong_token_exits_1_with_the_problem_detail(
    collector_url: str, db: psycopg.Connection[Any]
) -> None:
    url = f"{collector_url}/webhook/ci"
    result = send(
        "-d", f"@{CONFORMANCE / 'build_queued.json'}", "--url", url, "--token", "wrong-s3cret"
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"collector: send: {url} answered HTTP 403 Forbidden: invalid token\n"
    missing = send("-d", f"@{CONFORMANCE / 'build_queued.json'}", "--url", url)
    assert missing.returncode == 1
    assert "HTTP 401 Unauthorized: missing credentials" in missing.stderr
    assert stored(db) == []


@pytest.mark.parametrize(
    ("source", "options"),
    [
        ("github", []),  # GitHub's X-Hub-Signature-256: sha256=<hex>
        (
            "signed64",
            ["--hmac-header", "X-Signature", "--hmac-prefix", "", "--hmac-encoding", "base64"],
        ),
    ],
)
def test_an_hmac_signed_request_is_accepted(
    collector_url: str, db: psycopg.Connection[Any], source: str, options: list[str]
) -> None:
    url = f"{collector_url}/webhook/{source}"
    data = f"@{CONFORMANCE / 'change_merged.json'}"
    env = {"COLLECTOR_SEND_HMAC_SECRET": HMAC_SECRET}
    result = send("-d", data, "--url", url, *options, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accepted"] == 1
    assert len(stored(db)) == 1
    wrong = send("-d", data, "--url", url, "--hmac-secret", "not-the-s3cret", *options)
    assert wrong.returncode == 1
    assert "HTTP 403 Forbidden: invalid signature" in wrong.stderr
    assert "s3cret" not in wrong.stderr + wrong.stdout


def test_an_hmac_signed_gzip_request_is_accepted(collector_url: str) -> None:
    result = send(
        "-d",
        f"@{CONFORMANCE / 'change_merged.json'}",
        "--gzip",
        "--url",
        f"{collector_url}/webhook/github",
        "--hmac-secret",
        HMAC_SECRET,
    )
    assert result.returncode == 0, result.stderr


def test_gzip_body(collector_url: str, db: psycopg.Connection[Any]) -> None:
    result = send(
        "-d",
        f"@{CONFORMANCE / 'change_created.json'}",
        "--gzip",
        "--url",
        f"{collector_url}/webhook/ci",
        "--token",
        TOKEN,
    )
    assert result.returncode == 0, result.stderr
    assert len(stored(db)) == 1


def test_a_bad_event_exits_1_naming_its_index(
    collector_url: str, db: psycopg.Connection[Any]
) -> None:
    good = json.loads((CONFORMANCE / "service_deployed.json").read_text())
    bad = json.loads((CONFORMANCE / "service_removed.json").read_text())
    del bad["context"]["id"]
    result = send(
        "-d", json.dumps([good, bad]), "--url", f"{collector_url}/webhook/ci", "--token", TOKEN
    )
    assert result.returncode == 1
    assert result.stdout == ""
    first, *errors = result.stderr.splitlines()
    assert first.startswith(f"collector: send: {collector_url}/webhook/ci answered HTTP 400 ")
    assert "1 of 2 rejected" in first
    assert errors == ["  event 1: context.id: missing", "accepted: 1 (duplicates: 0)"]
    assert [row[0] for row in stored(db)] == [good["context"]["id"]]  # the good one is kept


def test_server_down_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/webhook/webhook"
    result = send("-d", '{"a": 1}', "--url", url, "--token", "tok-s3cret")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"collector: send: cannot connect to {url}: Connection refused\n"


def test_help_names_the_environment_variables() -> None:
    result = send("--help")
    assert result.returncode == 0, result.stderr
    for name in (
        "URL",
        "FORMAT",
        "GZIP",
        "TOKEN",
        "TOKEN_FILE",
        "HMAC_SECRET",
        "HMAC_SECRET_FILE",
        "HMAC_HEADER",
        "HMAC_PREFIX",
        "HMAC_ENCODING",
        "TIMEOUT",
    ):
        assert f"COLLECTOR_SEND_{name}" in result.stdout
