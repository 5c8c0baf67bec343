"""The `collector` command in-process: config --check / --print, --version, and the TOML writer."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from collector import __version__
from collector.cli import main, to_toml
from collector.settings import load_settings, masked


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("COLLECTOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def without_none(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_none(v) for k, v in data.items() if v is not None}
    return data


def test_to_toml_of_the_defaults_parses_back() -> None:
    data = masked(load_settings(None))

    assert tomllib.loads(to_toml(data)) == without_none(data)


def test_to_toml_parses_back_to_the_same_data() -> None:
    data: dict[str, Any] = {
        "name": "collector",
        "count": 3,
        "ratio": 0.25,
        "big": 1e20,
        "on": True,
        "off": False,
        "patterns": ["*.json", 'we"ird', "back\\slash"],
        "empty_list": [],
        "text": 'quote " backslash \\ newline \n tab \t unicode é ✓ control \x01 del \x7f',
        "database": {"url": "postgresql://me:***@db/ev", "pool_size": 4},
        "sources": {
            "inbox": {"type": "folder", "path": "/data/in", "recursive": False},
            "my-spool_2": {"type": "folder", "path": "spool"},
            "with.dot": {"path": "x"},
            "with space": {"path": "y"},
            "café": {"path": "z"},
        },
        "sinks": {},
        "nested": {"level": 1, "deeper": {"level": 2, "deepest": {"level": 3}}},
    }

    assert tomllib.loads(to_toml(data)) == data


def test_to_toml_writes_unset_values_as_comments() -> None:
    data = {"sources": {"inbox": {"path": "in", "done_dir": None, "failed_dir": None}}}
    notes: dict[tuple[str, ...], str] = {("sources", "inbox", "done_dir"): "default: <path>/done"}

    text = to_toml(data, notes)

    assert tomllib.loads(text) == {"sources": {"inbox": {"path": "in"}}}
    assert text.splitlines() == [
        "[sources.inbox]",
        'path = "in"',
        "# done_dir = …  # not set; default: <path>/done",
        "# failed_dir = …  # not set",
        "",
    ]


def test_config_check_with_embedded_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--check"]) == 0

    out, err = capsys.readouterr()
    assert out == "configuration OK: embedded defaults (no collector.toml)\n"
    assert err == ""


def test_config_check_is_the_default_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "collector.toml"
    path.write_text('[sinks.db]\ntype = "postgres"\n')

    assert main(["config"]) == 0

    assert capsys.readouterr().out == "configuration OK: collector.toml\n"


def test_config_check_of_a_named_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prod.toml"
    path.write_text('[sinks.db]\ntype = "postgres"\n')

    assert main(["config", "--check", "--config", str(path)]) == 0

    assert capsys.readouterr().out == f"configuration OK: {path}\n"


def test_config_file_can_be_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "env.toml"
    path.write_text('[sinks.db]\ntype = "postgres"\n')
    monkeypatch.setenv("COLLECTOR_CONFIG", str(path))

    assert main(["config", "--check"]) == 0

    assert capsys.readouterr().out == f"configuration OK: {path}\n"


def test_config_check_lists_every_error_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(
        '[sources.inbox]\ntype = "folder"\npathh = "in"\n\n[sinks.out]\ntype = "stdout"\n'
    )
    monkeypatch.setenv("COLLECTOR__PIPELINE__BATCH_SIZE", "0")

    assert main(["config", "--check", "-c", str(path)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert sorted(err.splitlines()) == [
        "collector: config: pipeline.batch_size: Input should be greater than or equal to 1",
        "collector: config: sources.inbox.path: required key is missing",
        "collector: config: sources.inbox.pathh: unknown key",
    ]


def test_config_check_names_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent.toml"

    assert main(["config", "--check", "-c", str(path)]) == 1

    assert capsys.readouterr().err == f"collector: config: file '{path}' does not exist\n"


def test_config_print_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://collector:hunter2@db.example:5432/events\n")
    monkeypatch.setenv("COLLECTOR__DATABASE__URL_FILE", str(secret))
    monkeypatch.setenv("COLLECTOR__SOURCES__INBOX__PATH", "/srv/in")

    assert main(["config", "--print"]) == 0

    out, err = capsys.readouterr()
    assert err == ""
    assert "hunter2" not in out
    printed = tomllib.loads(out)
    assert printed["database"]["url"] == "postgresql://collector:***@db.example:5432/events"
    assert printed["sources"]["inbox"]["path"] == "/srv/in"
    assert printed["sinks"] == {"db": {"type": "postgres", "required": True}}
    assert printed == without_none(masked(load_settings(None)))


def test_config_print_shows_every_key_unset_ones_as_comments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "--print"]) == 0

    lines = capsys.readouterr().out.splitlines()
    for key in ("enabled", "tls_cert", "tls_key", "done_dir", "failed_dir", "path"):
        assert any(line.startswith(f"# {key} = …  # not set") for line in lines), key
    assert "# event_type = …  # not set; type for plain JSON without one" in lines


def test_config_print_masks_credentials_in_urls_and_headers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(
        '[sources.bus]\ntype = "nats"\nservers = ["nats://natsuser:natspass@n:4222"]\n\n'
        '[sinks.db]\ntype = "postgres"\n\n'
        '[sinks.fwd]\ntype = "http"\n'
        'url = "https://user:urlpass@r.example/events?token=qtok"\n'
        'headers = { authorization = "Bearer hdrtoken", x-api-key = "hdrkey" }\n\n'
        '[sinks.relay]\ntype = "nats"\nservers = ["nats://relay:relaypass@n:4222"]\n'
    )

    assert main(["config", "--print"]) == 0

    out = capsys.readouterr().out
    for secret in ("natspass", "urlpass", "qtok", "hdrtoken", "hdrkey", "relaypass"):
        assert secret not in out
    printed = tomllib.loads(out)
    assert printed["sources"]["bus"]["servers"] == ["nats://natsuser:***@n:4222"]
    assert printed["sinks"]["fwd"]["url"] == "https://user:***@r.example/events?token=***"
    assert printed["sinks"]["fwd"]["headers"] == {"authorization": "***", "x-api-key": "***"}
    assert printed["sinks"]["relay"]["servers"] == ["nats://relay:***@n:4222"]


@pytest.mark.parametrize("command", [["config", "--check"], ["migrate", "--check"], ["run"]])
def test_a_list_from_the_environment_that_is_not_json_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    monkeypatch.setenv("COLLECTOR__SOURCES__INBOX__PATTERNS", "*.json")

    assert main(command) == 1

    assert capsys.readouterr().err == (
        "collector: config: COLLECTOR__SOURCES__INBOX__PATTERNS: must be a JSON list, "
        "e.g. '[\"*.json\"]'\n"
    )


def test_config_print_masks_a_password_parameter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLLECTOR__DATABASE__URL", "host=db user=me password=hunter2 dbname=ev")

    assert main(["config", "--print"]) == 0

    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert tomllib.loads(out)["database"]["url"] == "host=db user=me password=*** dbname=ev"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == f"collector {__version__}\n"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2

    assert "usage: collector" in capsys.readouterr().out


def test_help_names_the_environment_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["config", "--help"])

    out = capsys.readouterr().out
    assert "COLLECTOR_CONFIG" in out
