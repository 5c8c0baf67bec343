"""The `collector` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from collector import __version__
from tests.conftest import CollectorProcess, wait_for
from tests.conftest import run_collector as collector
from tests.nats_fixtures import free_port


def test_version(tmp_path: Path) -> None:
    result = collector("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"collector {__version__}"


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["migrate"],
        ["maintenance"],
        ["config"],
        ["db", "url"],
        ["db", "psql"],
        ["docs", "sql"],
        ["demo"],
        ["bench", "ingest"],
        ["bench", "nats"],
        ["bench", "http"],
    ],
)
def test_every_command_has_help_naming_its_environment_variable(
    command: list[str], tmp_path: Path
) -> None:
    result = collector(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "COLLECTOR_CONFIG" in result.stdout


def test_config_check_lists_every_error_with_its_key_path(tmp_path: Path) -> None:
    (tmp_path / "collector.toml").write_text(
        '[database]\nmigrate = "sometimes"\n\n[sources.inbox]\ntype = "folder"\n'
        'path = "in"\npatern = "*.json"\n\n[sinks.db]\ntype = "postgres"\n'
    )
    result = collector(
        "config", "--check", cwd=tmp_path, env={"COLLECTOR__PIPELINE__BATCH_SIZE": "0"}
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "collector: config: sources.inbox.patern: unknown key" in lines
    assert any(line.startswith("collector: config: database.migrate: ") for line in lines)
    assert any(line.startswith("collector: config: pipeline.batch_size: ") for line in lines)
    assert len(lines) == 3


def test_config_print_masks_secrets_and_reads_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://app:s3cret@db.example.com/events\n")
    (tmp_path / "collector.toml").write_text(
        f'[database]\nurl_file = "{secret}"\n\n[sinks.db]\ntype = "postgres"\n'
    )
    result = collector("config", "--print", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout
    assert 'url = "postgresql://app:***@db.example.com/events"' in result.stdout
    # A file that names a sink gets exactly what it names: no source.
    printed = tomllib.loads(result.stdout)
    assert printed["sources"] == {}
    assert printed["sinks"] == {"db": {"type": "postgres", "required": True}}


def test_config_print_into_collector_toml_starts_a_file_of_ones_own(tmp_path: Path) -> None:
    """The shell creates (empty) collector.toml before collector reads ./collector.toml."""
    result = subprocess.run(
        f"{sys.executable} -m collector config --print > collector.toml",
        shell=True,  # the redirection is what is tested
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = tomllib.loads((tmp_path / "collector.toml").read_text())
    assert list(printed["sources"]) == ["inbox", "webhook"]
    assert list(printed["sinks"]) == ["db"]
    check = collector("config", "--check", cwd=tmp_path)
    assert (check.returncode, check.stdout) == (0, "configuration OK: collector.toml\n")


def test_a_file_with_only_a_database_url_keeps_the_default_sources_and_sinks(
    tmp_path: Path,
) -> None:
    (tmp_path / "collector.toml").write_text('[database]\nurl = "postgresql://me@db/events"\n')
    result = collector("config", "--print", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = tomllib.loads(result.stdout)
    assert list(printed["sources"]) == ["inbox", "webhook"]
    assert printed["sinks"] == {"db": {"type": "postgres", "required": True}}


def test_an_environment_url_wins_over_the_file_s_url_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://app:filepw@file.example/events\n")
    (tmp_path / "collector.toml").write_text(f'[database]\nurl_file = "{secret}"\n')
    result = collector(
        "config",
        "--print",
        cwd=tmp_path,
        env={"COLLECTOR__DATABASE__URL": "postgresql://app:envpw@env.example/events"},
    )
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(result.stdout)["database"]["url"] == (
        "postgresql://app:***@env.example/events"
    )


@pytest.mark.parametrize(
    "command", [["config", "--check"], ["migrate", "--check"], ["db", "url"], ["run"]]
)
def test_a_database_url_that_is_not_one_is_a_config_error(
    tmp_path: Path, command: list[str]
) -> None:
    result = collector(*command, cwd=tmp_path, env={"COLLECTOR__DATABASE__URL": "notaurl"})
    assert result.returncode == 1
    assert result.stderr == (
        "collector: config: database.url: not a PostgreSQL URL (postgresql://user@host/db) or "
        'connection string: missing "=" after "notaurl" in connection info string\n'
    )


@pytest.mark.parametrize(
    "variable",
    ["COLLECTOR__SOURCES__BUS__SERVERS", "COLLECTOR__SOURCES__INBOX__PATTERNS"],
)
@pytest.mark.parametrize("command", [["config", "--check"], ["run"]])
def test_a_list_from_the_environment_must_be_json(
    tmp_path: Path, variable: str, command: list[str]
) -> None:
    (tmp_path / "collector.toml").write_text(
        '[sources.bus]\ntype = "nats"\n\n[sources.inbox]\ntype = "folder"\npath = "in"\n\n'
        '[sinks.db]\ntype = "postgres"\n'
    )
    result = collector(*command, cwd=tmp_path, env={variable: "nats://a:4222"})
    assert result.returncode == 1
    assert result.stderr == (
        f"collector: config: {variable}: must be a JSON list, e.g. '[\"nats://a:4222\"]'\n"
    )


@pytest.mark.parametrize("command", [["config", "--check"], ["run"]])
@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            'path = "/webhook/webhook"',
            "sources.tf.path: /webhook/webhook is already used by sources.webhook",
        ),
        ('path = "hooks/tf"', "sources.tf.path: 'hooks/tf' must start with '/', e.g. '/hooks/tf'"),
    ],
    ids=["taken", "relative"],
)
def test_http_source_paths_are_checked_with_the_configuration(
    tmp_path: Path, command: list[str], source: str, problem: str
) -> None:
    (tmp_path / "collector.toml").write_text(
        '[sources.webhook]\ntype = "http"\n\n'
        f'[sources.tf]\ntype = "http"\n{source}\n\n'
        '[sinks.db]\ntype = "postgres"\n'
    )
    result = collector(*command, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"collector: config: {problem}\n"


def test_a_typo_in_a_nats_subject_template_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "collector.toml").write_text(
        '[sinks.db]\ntype = "postgres"\n\n'
        '[sinks.fwd]\ntype = "nats"\nsubject = "explore.nats.fwd.{famly}.{type}"\n'
    )
    result = collector("config", "--check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "collector: config: sinks.fwd.subject: 'explore.nats.fwd.{famly}.{type}': unknown "
        "placeholder {famly}; placeholders are {family}, {type}, {source}, {subject}, {id}\n"
    )


def test_a_reader_role_gets_one_line_naming_the_fix(tmp_path: Path, database_url: str) -> None:
    role = f"collector_test_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE collector_reader").format(sql.Identifier(role))
        )
    try:
        result = collector(
            "migrate",
            "--check",
            cwd=tmp_path,
            env={"COLLECTOR__DATABASE__URL": make_conninfo(database_url, user=role)},
        )
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert result.returncode == 1
    assert result.stderr == (
        "collector: error: database: permission denied for schema collector: connect as the "
        "owner of the collector schema (the role that ran `collector migrate`), not a "
        "collector_reader role\n"
    )


def test_unreadable_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = collector("config", "-c", "missing.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "collector: config: file 'missing.toml' does not exist"


def test_files_are_read_as_utf8_whatever_the_locale(tmp_path: Path, database_url: str) -> None:
    # A server whose locale is plain C, without Python's UTF-8 coercion: the shipped migrations
    # (their comments are not ASCII) and a TOML file (UTF-8 by definition) read as anywhere else.
    (tmp_path / "collector.toml").write_text(
        f"# Ereignisse für Grafana — the “api” schema\n[database]\nurl = {database_url!r}\n",
        encoding="utf-8",
    )
    env = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    result = collector("migrate", "--check", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("up to date: ")


def test_db_url_of_the_embedded_server(tmp_path: Path) -> None:
    result = collector("db", "url", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("postgresql://postgres@/collector?host=/")
    assert not (tmp_path / ".collector").exists(), "printing the URL must not start anything"


def test_run_refuses_a_missing_inbox_parent(tmp_path: Path) -> None:
    (tmp_path / "collector.toml").write_text(
        '[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n\n'
        '[sources.inbox]\ntype = "folder"\npath = "/nonexistent/in"\n\n'
        '[sinks.db]\ntype = "postgres"\n'
    )
    result = collector("run", cwd=tmp_path)
    assert result.returncode == 1
    assert "sources.inbox.path" in result.stderr
    assert "/nonexistent/in" in result.stderr


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            '[sources.inbox]\ntype = "folder"\npath = "in"\ndone_dir = "taken/done"\n'
            '[sinks.db]\ntype = "postgres"\n[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n',
            "collector: config: sources.inbox: cannot create folder '{tmp}/taken/done': Not a "
            "directory",
        ),
        (
            '[sources.hooks]\ntype = "http"\n[sinks.db]\ntype = "postgres"\n'
            '[database]\ndata_dir = "taken/.collector"\n',
            "collector: database.data_dir: cannot write to '{tmp}/taken/.collector': Not a "
            "directory: set data_dir to a folder collector may write, or database.url to your "
            "PostgreSQL",
        ),
    ],
    ids=["folder source", "embedded database"],
)
def test_a_folder_that_cannot_be_created_is_named(
    tmp_path: Path, config: str, problem: str
) -> None:
    # As a user without write access gets "Permission denied" (root gets past permissions, not
    # past a file where a folder should be).
    (tmp_path / "taken").write_text("a file, not a folder")
    (tmp_path / "collector.toml").write_text(config)
    result = collector("run", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == problem.format(tmp=tmp_path) + "\n"


def test_db_psql_passes_psql_options_through(tmp_path: Path, database_url: str) -> None:
    """`collector db psql -c "..."` as the README shows: -c is psql's, not --config."""
    result = collector(
        "db",
        "psql",
        "-t",
        "-A",
        "-c",
        "select count(*) from api.events",
        cwd=tmp_path,
        env={"COLLECTOR__DATABASE__URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_run_logs_never_show_credentials(
    tmp_path: Path, database_url: str, collector_process: Callable[..., CollectorProcess]
) -> None:
    """An unreachable NATS server and HTTP receiver, both with credentials in their URLs: the
    log lines that name them show the URLs masked."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    closed = free_port()  # nothing listens there
    proc = collector_process(
        f'[database]\nurl = "{database_url}"\n\n'
        '[sources.inbox]\ntype = "folder"\npath = "inbox"\nsettle_s = 0\n\n'
        f'[sources.bus]\ntype = "nats"\nservers = ["nats://alice:s3cretpw@127.0.0.1:{closed}"]\n'
        "connect_timeout_s = 1\n\n"
        '[sinks.db]\ntype = "postgres"\n\n'
        '[sinks.fwd]\ntype = "http"\nretries = 0\n'
        f'url = "http://user:urlpw-SECRET@127.0.0.1:{closed}/e?token=qtok-SECRET&tenant=acme"\n'
        'headers = { authorization = "Bearer hdr-SECRET" }\n'
    ).start()
    (inbox / "one.json").write_text(
        '{"specversion": "1.0", "id": "1", "type": "com.example.t", "source": "/t"}'
    )

    wait_for(lambda: "optional_sink_failed" in proc.logs() and "nats_unavailable" in proc.logs())
    assert proc.stop() == 0
    logs = proc.logs()
    for secret in ("s3cretpw", "urlpw-SECRET", "qtok-SECRET", "hdr-SECRET"):
        assert secret not in logs
    assert f"nats://alice:***@127.0.0.1:{closed}" in logs
    assert f"http://user:***@127.0.0.1:{closed}/e?token=***&tenant=acme" in logs
