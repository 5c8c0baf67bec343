"""The `collector` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from collector import __version__


def collector(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
    # No sources configured in a file means none: the defaults apply only without a file.
    printed = tomllib.loads(result.stdout)
    assert printed["sources"] == {}
    assert printed["sinks"] == {"db": {"type": "postgres", "required": True}}


def test_unreadable_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = collector("config", "-c", "missing.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "collector: config: file 'missing.toml' does not exist"


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
