"""load_settings: embedded defaults, the TOML file, environment overrides, errors by key path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import pytest

from collector.errors import ConfigError
from collector.events import Family
from collector.settings import (
    DEFAULT_CONFIG_FILE,
    SUBJECT_PLACEHOLDERS,
    FolderSourceSettings,
    HttpSourceSettings,
    NatsSinkSettings,
    NatsSourceSettings,
    PostgresSinkSettings,
    RetentionSettings,
    StdoutSinkSettings,
    TokenAuthSettings,
    config_path,
    load_settings,
    mask_headers,
    mask_url,
    masked,
    unset_keys,
)

MINIMAL = """
[sources.inbox]
type = "folder"
path = "in"

[sinks.db]
type = "postgres"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No COLLECTOR__* variable of the caller's shell, and no ./collector.toml, leaks in."""
    for name in list(os.environ):
        if name.startswith("COLLECTOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "collector.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path | None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return caught.value.problems


def test_no_file_runs_on_embedded_defaults() -> None:
    settings = load_settings(None)

    inbox = settings.sources["inbox"]
    assert isinstance(inbox, FolderSourceSettings)
    assert inbox.path == Path("inbox")
    assert inbox.patterns == ["*.json", "*.jsonl", "*.ndjson"]
    assert list(settings.sinks) == ["db"]
    db = settings.sinks["db"]
    assert isinstance(db, PostgresSinkSettings)
    assert db.required is True
    assert settings.database.url.get_secret_value() == ""
    assert settings.database.migrate == "auto"
    assert settings.postgres_sinks == ["db"]


def test_toml_file_is_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[database]
url = "postgresql://collector@db.example/events"
migrate = "check"
pool_size = 8

[pipeline]
batch_size = 500
linger_ms = 5.5

[log]
level = "debug"
format = "json"

[sources.drop]
type = "folder"
path = "/data/drop"
patterns = ["*.json"]
recursive = true
after = "delete"
settle_s = 0
event_type = "com.example.thing"

[sinks.db]
type = "postgres"

[sinks.out]
type = "stdout"
buffer = 10
""",
    )

    settings = load_settings(path)

    assert settings.database.url.get_secret_value() == "postgresql://collector@db.example/events"
    assert settings.database.migrate == "check"
    assert settings.database.pool_size == 8
    assert settings.pipeline.batch_size == 500
    assert settings.pipeline.linger_ms == 5.5
    assert settings.pipeline.queue_size == 20_000  # untouched keys keep their default
    assert (settings.log.level, settings.log.format) == ("debug", "json")
    drop = settings.sources["drop"]
    assert drop == FolderSourceSettings(
        type="folder",
        path=Path("/data/drop"),
        patterns=["*.json"],
        recursive=True,
        after="delete",
        settle_s=0,
        event_type="com.example.thing",
    )
    out = settings.sinks["out"]
    assert isinstance(out, StdoutSinkSettings)
    assert (out.required, out.buffer) == (False, 10)
    assert settings.postgres_sinks == ["db"]


def test_a_file_naming_sources_or_sinks_gets_exactly_those(tmp_path: Path) -> None:
    path = write(tmp_path, '[sinks.db]\ntype = "postgres"\n')

    assert load_settings(path).sources == {}


@pytest.mark.parametrize(
    "text",
    ["", '[database]\nurl = "postgresql://collector@db.example/events"\n', "[pipeline]\n"],
    ids=["empty", "database-only", "pipeline-only"],
)
def test_a_file_naming_no_source_and_no_sink_keeps_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """`collector config --print > collector.toml` reads the empty file the shell created."""
    monkeypatch.setenv("COLLECTOR__SOURCES__INBOX__PATH", "/srv/in")
    settings = load_settings(write(tmp_path, text))

    assert list(settings.sources) == ["inbox", "webhook"]
    assert settings.sources["inbox"] == FolderSourceSettings(type="folder", path=Path("/srv/in"))
    assert list(settings.sinks) == ["db"]
    assert settings.postgres_sinks == ["db"]


def test_environment_overrides_a_file_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL + "\n[pipeline]\nbatch_size = 500\nqueue_size = 900\n")
    monkeypatch.setenv("COLLECTOR__PIPELINE__BATCH_SIZE", "7")
    monkeypatch.setenv("COLLECTOR__LOG__LEVEL", "error")

    settings = load_settings(path)

    assert settings.pipeline.batch_size == 7
    assert settings.pipeline.queue_size == 900  # from the file, not reset to the default
    assert settings.log.level == "error"


def test_nested_environment_override_is_deep_merged_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
[sources.inbox]
type = "folder"
path = "in"
patterns = ["*.ndjson"]
recursive = true

[sinks.db]
type = "postgres"
""",
    )
    monkeypatch.setenv("COLLECTOR__SOURCES__INBOX__PATH", "/srv/inbox")

    inbox = load_settings(path).sources["inbox"]

    assert isinstance(inbox, FolderSourceSettings)
    assert inbox.path == Path("/srv/inbox")
    assert inbox.patterns == ["*.ndjson"]
    assert inbox.recursive is True


def test_environment_overrides_the_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR__SOURCES__INBOX__PATH", "/srv/inbox")
    monkeypatch.setenv("COLLECTOR__SOURCES__INBOX__PATTERNS", '["*.jsonl"]')
    monkeypatch.setenv("COLLECTOR__DATABASE__URL", "postgresql://u:pw@h/db")

    settings = load_settings(None)

    inbox = settings.sources["inbox"]
    assert isinstance(inbox, FolderSourceSettings)
    assert (inbox.path, inbox.patterns) == (Path("/srv/inbox"), ["*.jsonl"])
    assert settings.database.url.get_secret_value() == "postgresql://u:pw@h/db"
    assert list(settings.sinks) == ["db"]


def test_environment_can_add_a_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv("COLLECTOR__SOURCES__SPOOL__TYPE", "folder")
    monkeypatch.setenv("COLLECTOR__SOURCES__SPOOL__PATH", "/spool")

    settings = load_settings(path)

    assert sorted(settings.sources) == ["inbox", "spool"]
    spool = settings.sources["spool"]
    assert isinstance(spool, FolderSourceSettings)
    assert spool.path == Path("/spool")


def test_unknown_key_is_named_with_its_full_path(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('path = "in"', 'path = "in"\npathh = "x"'))

    assert problems(path) == ["config: sources.inbox.pathh: unknown key"]


def test_unknown_key_from_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR__SOURCES__INBOX__PATHH", "x")

    assert problems(None) == ["config: sources.inbox.pathh: unknown key"]


def test_every_error_is_listed_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
bogus = 1

[database]
port = 5432

[pipeline]
batch_size = 0

[sources.inbox]
type = "folder"
pathh = "in"

[sinks.db]
type = "postgres"
requird = true
""",
    )

    assert sorted(problems(path)) == sorted(
        [
            "config: bogus: unknown key",
            "config: database.port: unknown key",
            "config: pipeline.batch_size: Input should be greater than or equal to 1",
            "config: sources.inbox.path: required key is missing",
            "config: sources.inbox.pathh: unknown key",
            "config: sinks.db.requird: unknown key",
        ]
    )


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "[http]\nport = 99999\nbogus = 1\n",
            {},
            [
                "config: http.bogus: unknown key",
                "config: http.port: Input should be less than or equal to 65535",
            ],
        ),
        (
            "",
            {"COLLECTOR__HTTP__PORT": "abc"},
            [
                "config: http.port: Input should be a valid integer, unable to parse string as "
                "an integer"
            ],
        ),
        (
            '[sources.http]\ntype = "http"\nack = "never"\n[sinks.db]\ntype = "postgres"\n',
            {},
            ["config: sources.http.ack: Input should be 'commit' or 'enqueue'"],
        ),
        (
            '[sinks.postgres]\ntype = "postgres"\nrequired = "maybe"\n',
            {},
            [
                "config: sinks.postgres.required: Input should be a valid boolean, unable to "
                "interpret input"
            ],
        ),
        (
            '[sources.c]\ntype = "http"\nauth = { type = "token" }\n'
            '[sinks.db]\ntype = "postgres"\n',
            {},
            ["config: sources.c.auth.token: required key is missing"],
        ),
        (
            '[sources.token]\ntype = "http"\nauth = { type = "token", token = "t", hmac = 1 }\n'
            '[sinks.db]\ntype = "postgres"\n',
            {},
            ["config: sources.token.auth.hmac: unknown key"],
        ),
        (
            '[http]\ntls_cert = "/etc/cert.pem"\n',
            {},
            [
                "config: http.tls_key: required: tls_cert and tls_key go together, set both or "
                "neither"
            ],
        ),
    ],
    ids=[
        "http-table",
        "env",
        "source-named-http",
        "sink-named-postgres",
        "auth",
        "auth-named-token",
        "tls",
    ],
)
def test_errors_name_the_full_key_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    env: dict[str, str],
    expected: list[str],
) -> None:
    """Names and keys that happen to be type names ('http', 'postgres', 'token') are kept."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert sorted(problems(write(tmp_path, text))) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "COLLECTOR__SOURCES__INBOX__PATTERNS",
            "*.json",
            "must be a JSON list, e.g. '[\"*.json\"]'",
        ),
        (
            "COLLECTOR__SINKS__BUS__SERVERS",
            "nats://a:4222,nats://b:4222",
            'must be a JSON list, e.g. \'["nats://a:4222", "nats://b:4222"]\'',
        ),
        (
            "COLLECTOR__SINKS__BUS__SERVERS",
            "nats://me:pw-SECRET@a:4222",
            "must be a JSON list, e.g. '[\"nats://me:***@a:4222\"]'",
        ),
        (
            "COLLECTOR__DATABASE",
            "x",
            'must be a JSON object, e.g. \'{"key": "value"}\', or set each key as '
            "COLLECTOR__DATABASE__<KEY>",
        ),
    ],
)
def test_a_list_or_table_from_the_environment_must_be_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    path = write(tmp_path, '[sinks.bus]\ntype = "nats"\nrequired = true\n' + MINIMAL)
    monkeypatch.setenv(name, value)

    assert problems(path) == [f"config: {name}: {expected}"]


def test_a_list_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR__SOURCES__BUS__TYPE", "nats")
    monkeypatch.setenv("COLLECTOR__SOURCES__BUS__SERVERS", '["nats://a:4222"]')
    monkeypatch.setenv("COLLECTOR__DATABASE", '{"pool_size": 9}')

    settings = load_settings(None)

    bus = settings.sources["bus"]
    assert isinstance(bus, NatsSourceSettings)
    assert bus.servers == ["nats://a:4222"]
    assert settings.database.pool_size == 9


def test_missing_type_is_a_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[sources.inbox]\npath = "in"\n\n[sinks.db]\nrequired = true\n')

    assert sorted(problems(path)) == [
        "config: sinks.db.type: required key is missing",
        "config: sources.inbox.type: required key is missing",
    ]


def test_unknown_type_names_the_key_and_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('type = "folder"', 'type = "kafka"'))

    [problem] = problems(path)
    assert problem.startswith("config: sources.inbox.type: 'kafka' is not one of ")
    assert "'folder'" in problem


def test_invalid_choice_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[database]\nmigrate = "sometimes"\n')

    [problem] = problems(path)
    assert problem.startswith("config: database.migrate: ")
    assert "'auto'" in problem
    assert "'check'" in problem


def test_secret_is_read_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://collector:s3cret@db/events\n")
    path = write(tmp_path, MINIMAL + f'\n[database]\nurl_file = "{secret}"\n')

    settings = load_settings(path)

    assert settings.database.url.get_secret_value() == "postgresql://collector:s3cret@db/events"


def test_secret_file_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://collector:s3cret@db/events")
    monkeypatch.setenv("COLLECTOR__DATABASE__URL_FILE", str(secret))

    settings = load_settings(None)

    assert settings.database.url.get_secret_value() == "postgresql://collector:s3cret@db/events"


def test_a_secret_and_its_file_together_are_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://a@b/c")
    path = write(
        tmp_path, MINIMAL + f'\n[database]\nurl = "postgresql://x@y/z"\nurl_file = "{secret}"\n'
    )

    assert problems(path) == ["config: database.url_file: give either url or url_file, not both"]


def test_an_environment_value_wins_over_the_file_s_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://from@file/db")
    path = write(tmp_path, MINIMAL + f'\n[database]\nurl_file = "{secret}"\n')
    monkeypatch.setenv("COLLECTOR__DATABASE__URL", "postgresql://from@env/db")

    assert load_settings(path).database.url.get_secret_value() == "postgresql://from@env/db"


def test_an_environment_secret_file_wins_over_the_file_s_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-secret-file\n")
    path = write(
        tmp_path,
        MINIMAL + '\n[sources.hook]\ntype = "http"\nauth = { type = "token", token = "in-file" }\n',
    )
    monkeypatch.setenv("COLLECTOR__SOURCES__HOOK__AUTH__TOKEN_FILE", str(secret))

    hook = load_settings(path).sources["hook"]

    assert isinstance(hook, HttpSourceSettings)
    assert isinstance(hook.auth, TokenAuthSettings)
    assert hook.auth.token.get_secret_value() == "from-secret-file"


def test_unreadable_secret_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "db-url"
    path = write(tmp_path, MINIMAL + f'\n[database]\nurl_file = "{missing}"\n')

    assert problems(path) == [
        f"config: database.url_file: cannot read '{missing}': No such file or directory"
    ]


def test_file_key_without_a_matching_key_is_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[database]\npassword_file = "/x"\n')

    assert problems(path) == ["config: database.password_file: unknown key"]


def test_masked_hides_the_password_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[database]\nurl = "postgresql://me:s3cret@db:5432/ev"\n')
    settings = load_settings(path)

    data = masked(settings)

    assert data["database"]["url"] == "postgresql://me:***@db:5432/ev"
    assert data["sources"]["inbox"]["path"] == "in"
    assert data["sinks"] == {"db": {"type": "postgres", "required": True}}
    assert "s3cret" not in repr(data)
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", ""),
        ("postgresql://db/events", "postgresql://db/events"),
        ("postgresql://me@db/events", "postgresql://me@db/events"),
        ("postgresql://me:pw@db/events", "postgresql://me:***@db/events"),
        ("postgresql://me:p%40ss@db/events", "postgresql://me:***@db/events"),
        ("postgresql://me@db/events?password=pw&sslmode=require", None),
        ("host=db user=me password=pw dbname=events", "host=db user=me password=*** dbname=events"),
        ("host=db password='p w' dbname=events", "host=db password=*** dbname=events"),
    ],
)
def test_mask_url(url: str, expected: str | None) -> None:
    result = mask_url(url)

    if expected is not None:
        assert result == expected
    assert "pw" not in result.replace("password", "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://r.example/events", "https://r.example/events"),
        (
            "https://user:urlpass@r.example/events?token=qtok&x=1#top",
            "https://user:***@r.example/events?token=***&x=1#top",
        ),
        (
            "https://r.example/e?api_key=k1&Signature=s1&X-Amz-Signature=s2&sig=s3&page=2",
            "https://r.example/e?api_key=***&Signature=***&X-Amz-Signature=***&sig=***&page=2",
        ),
        (
            "https://r.example/e?access_token=t&auth=a",
            "https://r.example/e?access_token=***&auth=***",
        ),
        ("nats://natsuser:natspass@n:4222", "nats://natsuser:***@n:4222"),
        ("nats://s3cr3ttoken@n:4222", "nats://***@n:4222"),  # a user name alone is a NATS token
        ("tls://n:4222", "tls://n:4222"),
        (
            "postgresql://u:pw@h1,h2:5433/db?sslmode=require",
            "postgresql://u:***@h1,h2:5433/db?sslmode=require",
        ),
        ("postgresql:///db?host=/run/pg&password=pw", "postgresql:///db?host=/run/pg&password=***"),
    ],
)
def test_mask_url_hides_credentials_and_secret_query_parameters(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_mask_headers_hides_secret_looking_headers() -> None:
    headers = {
        "authorization": "Bearer abc",
        "Proxy-Authorization": "Basic xyz",
        "cookie": "session=1",
        "x-api-key": "k",
        "X-Auth-Token": "t",
        "x-client-secret": "s",
        "x-signature": "sig",
        "x-tenant": "acme",
        "accept": "application/json",
    }

    assert mask_headers(headers) == {
        **{name: "***" for name in headers},
        "x-tenant": "acme",
        "accept": "application/json",
    }


FORWARDING = """
[sources.bus]
type = "nats"
servers = ["nats://natsuser:natspass@n1:4222", "nats://n2:4222"]

[sinks.db]
type = "postgres"

[sinks.fwd]
type = "http"
url = "https://user:urlpass@r.example/events?token=qtok&tenant=acme"
headers = { authorization = "Bearer hdrtoken", x-api-key = "hdrkey", x-tenant = "acme" }

[sinks.relay]
type = "nats"
servers = ["nats://relay:relaypass@n3:4222"]
"""


def test_masked_hides_urls_headers_and_server_credentials(tmp_path: Path) -> None:
    data = masked(load_settings(write(tmp_path, FORWARDING)))

    for secret in ("natspass", "urlpass", "qtok", "hdrtoken", "hdrkey", "relaypass"):
        assert secret not in repr(data)
    assert data["sources"]["bus"]["servers"] == ["nats://natsuser:***@n1:4222", "nats://n2:4222"]
    assert data["sinks"]["fwd"]["url"] == "https://user:***@r.example/events?token=***&tenant=acme"
    assert data["sinks"]["fwd"]["headers"] == {
        "authorization": "***",
        "x-api-key": "***",
        "x-tenant": "acme",
    }
    assert data["sinks"]["relay"]["servers"] == ["nats://relay:***@n3:4222"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("notaurl", 'missing "=" after "notaurl" in connection info string'),
        (
            "postgresql://me:s3cret@[db/events",
            'end of string reached when looking for matching "]" in IPv6 host address in URI: '
            '"postgresql://me:***@[db/events"',
        ),
    ],
)
def test_a_database_url_that_is_not_one_is_an_error(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("COLLECTOR__DATABASE__URL", url)

    assert problems(None) == [
        "config: database.url: not a PostgreSQL URL (postgresql://user@host/db) or connection "
        f"string: {expected}"
    ]


@pytest.mark.parametrize(
    "url", ["postgresql://me:pw@db:5432/events?sslmode=require", "host=/run/pg dbname=events"]
)
def test_database_urls_and_connection_strings_are_accepted(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("COLLECTOR__DATABASE__URL", url)

    assert load_settings(None).database.url.get_secret_value() == url


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("explore.nats.fwd.{famly}.{type}", "unknown placeholder {famly}"),
        ("events.{}", "unknown placeholder {}"),
        ("events.{type.name}", "unknown placeholder {type.name}"),
        ("events.{type", "expected '}' before end of string"),
    ],
)
def test_a_subject_template_with_an_unknown_placeholder_is_an_error(
    tmp_path: Path, subject: str, problem: str
) -> None:
    path = write(tmp_path, MINIMAL + f'\n[sinks.bus]\ntype = "nats"\nsubject = "{subject}"\n')

    assert problems(path) == [
        f"config: sinks.bus.subject: {subject!r}: {problem}; placeholders are {{family}}, "
        "{type}, {source}, {subject}, {id}"
    ]


def test_a_subject_template_may_use_every_placeholder(tmp_path: Path) -> None:
    template = ".".join(f"{{{name}}}" for name in SUBJECT_PLACEHOLDERS) + ".{{literal}}"
    path = write(tmp_path, MINIMAL + f'\n[sinks.bus]\ntype = "nats"\nsubject = "{template}"\n')

    bus = load_settings(path).sinks["bus"]

    assert isinstance(bus, NatsSinkSettings)
    assert bus.subject == template


HOOKS = MINIMAL + '\n[sources.webhook]\ntype = "http"\n'


def test_two_http_sources_on_one_path_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HOOKS + '\n[sources.tf]\ntype = "http"\npath = "/webhook/webhook"\n')

    assert problems(path) == [
        "config: sources.tf.path: /webhook/webhook is already used by sources.webhook"
    ]


def test_two_lineprotocol_sources_need_a_path_each(tmp_path: Path) -> None:
    cc = '\n[sources.{}]\ntype = "http"\nformat = "lineprotocol"\n'
    path = write(tmp_path, MINIMAL + cc.format("cc1") + cc.format("cc2"))

    assert problems(path) == ["config: sources.cc2.path: /api/write is already used by sources.cc1"]


def test_a_default_cluster_is_a_cluster_name(tmp_path: Path) -> None:
    # It becomes part of each event's source, /clusters/<cluster>/hosts/<hostname>.
    cc = '\n[sources.cc]\ntype = "http"\nformat = "lineprotocol"\ncluster = "a/b"\n'
    bus = '\n[sources.bus]\ntype = "nats"\nservers = ["nats://x:4222"]\ncluster = " "\n'
    path = write(tmp_path, MINIMAL + cc + bus)

    assert problems(path) == [
        "config: sources.cc.cluster: 'a/b' is not a cluster name (empty, or contains '/')",
        "config: sources.bus.cluster: ' ' is not a cluster name (empty, or contains '/')",
    ]


def test_an_http_path_must_start_with_a_slash(tmp_path: Path) -> None:
    path = write(tmp_path, HOOKS + '\n[sources.custom]\ntype = "http"\npath = "hooks/custom"\n')

    assert problems(path) == [
        "config: sources.custom.path: 'hooks/custom' must start with '/', e.g. '/hooks/custom'"
    ]


def test_unset_keys_are_listed_with_their_meaning() -> None:
    unset = unset_keys(load_settings(None))

    assert unset[("http", "tls_cert")] == "PEM certificate: serve HTTPS"
    assert unset[("sources", "inbox", "done_dir")] == "default: <path>/done"
    assert unset[("sources", "webhook", "path")] == "default: /webhook/<name>"
    assert ("database", "url") not in unset  # set, to "", not unset


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[sinks.db\ntype = 'postgres'\n")

    [problem] = problems(path)
    assert problem.startswith(f"config: {path}: invalid TOML: ")
    assert "line 1" in problem


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    assert problems(path) == [f"config: file '{path}' does not exist"]


@pytest.mark.parametrize(
    "sinks",
    [
        '[sinks.out]\ntype = "stdout"\n',
        '[sinks.db]\ntype = "postgres"\nrequired = false\n',
        "",
    ],
    ids=["stdout-only", "postgres-not-required", "no-sinks"],
)
def test_a_config_without_a_required_sink_is_rejected(tmp_path: Path, sinks: str) -> None:
    path = write(tmp_path, '[sources.inbox]\ntype = "folder"\npath = "in"\n\n' + sinks)

    assert problems(path) == [
        "config: sinks: at least one sink must be required (e.g. type = 'postgres')"
    ]


def test_a_required_stdout_sink_is_enough(tmp_path: Path) -> None:
    path = write(tmp_path, '[sinks.out]\ntype = "stdout"\nrequired = true\n')

    assert load_settings(path).postgres_sinks == []


def test_names_with_other_characters_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[sources.inbox]", '[sources."my inbox"]'))

    assert problems(path) == [
        "config: sources.\"my inbox\": names use letters, digits, '-' and '_' only"
    ]


def test_config_path_prefers_the_explicit_file(tmp_path: Path) -> None:
    explicit = tmp_path / "other.toml"

    assert config_path(explicit) == explicit
    assert config_path(None) is None  # cwd is tmp_path, which has no collector.toml
    (tmp_path / DEFAULT_CONFIG_FILE).write_text(MINIMAL)
    assert config_path(None) == DEFAULT_CONFIG_FILE


# -- retention and maintenance -------------------------------------------------------------------


def test_retention_defaults_keep_everything_but_cluster_events() -> None:
    settings = load_settings(None)
    assert settings.retention.by_family() == {
        "cdevents": None,
        "cloudevents": None,
        "raw": None,
        "ccmessage": "30 days",
        "cclog": None,
    }
    assert settings.maintenance.interval_s == 3600


def test_retention_has_a_key_per_event_family() -> None:
    assert set(RetentionSettings.model_fields) == set(get_args(Family))


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("forever", None),
        (" Forever ", None),
        ("1 day", "1 day"),
        ("7 days", "7 days"),
        ("1 days", "1 day"),
        ("2  Weeks", "2 weeks"),
        ("6 month", "6 months"),
        ("10 years", "10 years"),
    ],
)
def test_retention_values_are_normalised(tmp_path: Path, given: str, kept: str | None) -> None:
    path = write(tmp_path, MINIMAL + f'\n[retention]\ncclog = "{given}"\n')
    assert load_settings(path).retention.by_family()["cclog"] == kept


@pytest.mark.parametrize("bad", ["30", "30 dayz", "0 days", "-1 days", "1.5 days", "1 hour", ""])
def test_a_bad_retention_names_the_key_and_the_forms(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, MINIMAL + f'\n[retention]\nccmessage = "{bad}"\n')
    assert problems(path) == [
        f'config: retention.ccmessage: {bad!r} is not a retention: use "forever" or '
        '"<n> days", "<n> weeks", "<n> months" or "<n> years"'
    ]


def test_retention_and_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR__RETENTION__CCMESSAGE", "90 days")
    monkeypatch.setenv("COLLECTOR__MAINTENANCE__INTERVAL_S", "60")
    settings = load_settings(None)
    assert settings.retention.ccmessage == "90 days"
    assert settings.maintenance.interval_s == 60


def test_unknown_family_and_bad_interval_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, MINIMAL + '\n[retention]\nlogs = "1 year"\n\n[maintenance]\ninterval_s = 0\n'
    )
    assert problems(path) == [
        "config: retention.logs: unknown key",
        "config: maintenance.interval_s: Input should be greater than 0",
    ]
