"""Configuration: one TOML file, overridden by `COLLECTOR__SECTION__KEY` environment variables.

With no file, or a file that names no source and no sink, collector starts from the embedded
defaults (`DEFAULTS`): embedded PostgreSQL, a folder source `inbox`, an http source `webhook` and
a postgres sink. Unknown keys are errors naming the key, and every `<key>_file` reads the secret
`<key>` from a file.
"""

from __future__ import annotations

import copy
import json
import os
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from urllib.parse import unquote

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from collector.auth import load_ed25519_public_key
from collector.ccmessage import is_name
from collector.errors import ConfigError

ENV_PREFIX = "COLLECTOR__"
DEFAULT_CONFIG_FILE = Path("collector.toml")

DEFAULTS: dict[str, Any] = {
    "sources": {"inbox": {"type": "folder", "path": "inbox"}, "webhook": {"type": "http"}},
    "sinks": {"db": {"type": "postgres"}},
}


class KeyProblems(ValueError):
    """Problems found by a check of a whole table, each with the key (under that table) it is
    about, so that the error names the full key path."""

    def __init__(self, *problems: tuple[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))
        self.problems = problems


class Section(BaseModel):
    """A configuration table: unknown keys are errors and `<key>_file` reads secret `<key>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        values = dict(data)
        for key in [k for k in values if isinstance(k, str) and k.endswith("_file")]:
            target = key.removesuffix("_file")
            if target not in cls.model_fields or key in cls.model_fields:
                continue
            path = Path(str(values.pop(key))).expanduser()
            if values.get(target):
                raise KeyProblems((key, f"give either {target} or {key}, not both"))
            try:
                values[target] = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise KeyProblems((key, f"cannot read {str(path)!r}: {exc.strerror}")) from None
        return values


class DatabaseSettings(Section):
    url: SecretStr = Field(
        default=SecretStr(""),
        description="PostgreSQL URL; empty runs an embedded PostgreSQL under data_dir",
    )
    data_dir: Path = Field(default=Path(".collector"), description="embedded PostgreSQL data")
    migrate: Literal["auto", "check"] = Field(
        default="auto", description="auto: apply pending migrations at start; check: refuse"
    )
    pool_size: int = Field(default=4, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _conninfo(cls, url: SecretStr) -> SecretStr:
        text = url.get_secret_value()
        if text:
            # Imported here: slow to import, and needed only when a URL is set.
            from psycopg import ProgrammingError
            from psycopg.conninfo import conninfo_to_dict

            try:
                conninfo_to_dict(text)
            except ProgrammingError as exc:
                # libpq quotes the string, or a part of it, in some of its messages.
                message = str(exc).strip().replace(text, mask_url(text))
                for secret in _mask(text)[1]:
                    message = message.replace(secret, "***")
                raise ValueError(
                    f"not a PostgreSQL URL (postgresql://user@host/db) or connection string: "
                    f"{message}"
                ) from None
        return url


class PipelineSettings(Section):
    queue_size: int = Field(default=20_000, ge=1, description="events waiting for the sinks")
    batch_size: int = Field(default=2_000, ge=1, description="events per database transaction")
    linger_ms: float = Field(
        default=20,
        ge=0,
        description="while another batch is being written, wait up to this long to fill a batch",
    )
    writers: int = Field(
        default=2, ge=1, le=16, description="batches written at once, each in its own transaction"
    )
    shutdown_timeout_s: float = Field(default=30, ge=0)


class FolderSourceSettings(Section):
    type: Literal["folder"]
    path: Path
    patterns: list[str] = Field(default_factory=lambda: ["*.json", "*.jsonl", "*.ndjson"])
    recursive: bool = False
    after: Literal["move", "delete"] = Field(
        default="move", description="move: done files go to done_dir; delete: they are removed"
    )
    done_dir: Path | None = Field(default=None, description="default: <path>/done")
    failed_dir: Path | None = Field(default=None, description="default: <path>/failed")
    poll_interval_s: float = Field(
        default=0.1, gt=0, description="look for new files this often while the inbox is empty"
    )
    settle_s: float = Field(
        default=0.5, ge=0, description="a file is read once unchanged for this long"
    )
    max_files_in_flight: int = Field(default=8, ge=1)
    event_type: str | None = Field(
        default=None, description="type given to plain JSON documents that carry none"
    )
    event_source: str | None = Field(
        default=None, description="source given to plain JSON (default: collector/<name>)"
    )


class NoAuthSettings(Section):
    type: Literal["none"]


class TokenAuthSettings(Section):
    type: Literal["token"]
    token: SecretStr
    header: str = Field(
        default="authorization",
        description="authorization: expects 'Bearer <token>'; any other header: the token as is",
    )


class HmacAuthSettings(Section):
    type: Literal["hmac"]
    secrets: list[SecretStr] = Field(
        description="HMAC-SHA256 keys; several for rotation (secrets_file: one per line)"
    )
    header: str = "x-hub-signature-256"
    prefix: str = "sha256="
    encoding: Literal["hex", "base64"] = "hex"

    @field_validator("secrets", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> Any:
        return (
            [line for line in value.splitlines() if line.strip()]
            if isinstance(value, str)
            else value
        )


class JwtAuthSettings(Section):
    type: Literal["jwt"]
    public_keys: list[str] = Field(
        description="Ed25519 public keys: base64 of the raw 32 bytes (file: one per line)"
    )

    @field_validator("public_keys", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> Any:
        return (
            [line for line in value.splitlines() if line.strip()]
            if isinstance(value, str)
            else value
        )

    @field_validator("public_keys")
    @classmethod
    def _valid_keys(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one public key is needed")
        for index, key in enumerate(value):
            try:
                load_ed25519_public_key(key)
            except ValueError as exc:
                raise ValueError(f"key {index}: {exc}") from None
        return value


AuthSettings = Annotated[
    NoAuthSettings | TokenAuthSettings | HmacAuthSettings | JwtAuthSettings,
    Field(discriminator="type"),
]


def _a_cluster_name(cluster: str | None) -> str | None:
    """A default cluster becomes part of each event's source, /clusters/<cluster>/…."""
    if cluster is not None and not is_name(cluster):
        raise ValueError(f"{cluster!r} is not a cluster name (empty, or contains '/')")
    return cluster


class HttpSourceSettings(Section):
    type: Literal["http"]
    path: str | None = Field(default=None, description="default: /webhook/<name>")
    format: Literal["events", "lineprotocol"] = Field(
        default="events",
        description="events: CloudEvents/CDEvents/JSON bodies; lineprotocol: ClusterCockpit",
    )
    ack: Literal["commit", "enqueue"] = Field(
        default="commit",
        description="commit: answer once stored (durable); enqueue: answer once queued (fast, "
        "lost if collector crashes before the commit)",
    )
    auth: AuthSettings = Field(default_factory=lambda: NoAuthSettings(type="none"))
    max_events: int = Field(default=10_000, ge=1, description="events per request")
    queue_wait_s: float = Field(
        default=5.0, ge=0, description="wait this long for room in a full queue, then 503"
    )
    cluster: str | None = Field(
        default=None, description="lineprotocol: cluster when neither tag nor ?cluster= gives one"
    )
    event_type: str | None = Field(default=None, description="type for plain JSON without one")
    event_source: str | None = Field(default=None, description="source for plain JSON")
    type_header: str | None = Field(
        default=None, description="plain JSON: header carrying the type (GitHub: X-GitHub-Event)"
    )
    id_header: str | None = Field(
        default=None, description="plain JSON: header carrying the id (GitHub: X-GitHub-Delivery)"
    )
    headers: list[str] = Field(
        default_factory=list, description="request headers kept in each event's metadata"
    )

    _cluster_name = field_validator("cluster")(_a_cluster_name)

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError(f"{path!r} must start with '/', e.g. '/{path.lstrip('./')}'")
        return path

    def endpoint(self, name: str) -> str:
        """The path this source is served on."""
        return self.path or ("/api/write" if self.format == "lineprotocol" else f"/webhook/{name}")


class NatsConnectionSettings(Section):
    """How to reach NATS: shared by the nats source and the nats sink."""

    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    nkey_seed_file: Path | None = Field(default=None, description="NKey seed file")
    creds_file: Path | None = Field(default=None, description="JWT + NKey credentials file")
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)


class NatsSourceSettings(NatsConnectionSettings):
    type: Literal["nats"]
    mode: Literal["jetstream", "core"] = Field(
        default="jetstream",
        description="jetstream: durable, acked after commit; core: at-most-once subscription",
    )
    subjects: list[str] = Field(default_factory=lambda: ["events.>"], min_length=1)
    queue_group: str | None = Field(default=None, description="core: share messages")
    format: Literal["auto", "cloudevents", "cdevents", "json", "lineprotocol"] = "auto"
    stream: str = Field(default="EVENTS", description="jetstream: stream to bind or create")
    durable: str = Field(default="collector", description="jetstream: durable pull consumer")
    create: bool = Field(default=True, description="create the stream when missing")
    storage: Literal["file", "memory"] = "file"
    retention: Literal["limits", "workqueue", "interest"] = "limits"
    fetch_batch: int = Field(default=1000, ge=1, le=100_000)
    fetchers: int = Field(default=2, ge=1, le=64, description="concurrent fetch loops")
    max_ack_pending: int = Field(default=20_000, ge=1)
    ack_wait_s: float = Field(default=60.0, gt=0)
    nak_delay_s: float = Field(default=2.0, ge=0, description="redeliver after a sink failure")
    headers: list[str] = Field(
        default_factory=list, description="message headers kept in each event's metadata"
    )
    event_type: str | None = Field(default=None, description="type for plain JSON")
    event_source: str | None = Field(default=None, description="source for plain JSON")
    type_header: str | None = Field(
        default=None, description="plain JSON: header carrying the type"
    )
    id_header: str | None = Field(default=None, description="plain JSON: header carrying the id")
    subject_types: dict[str, str] = Field(
        default_factory=dict,
        description="plain JSON: subject pattern → type, e.g. 'builds.*' = 'com.example.build'",
    )
    cluster: str | None = Field(default=None, description="lineprotocol: default cluster")

    _cluster_name = field_validator("cluster")(_a_cluster_name)


SourceSettings = Annotated[
    FolderSourceSettings | HttpSourceSettings | NatsSourceSettings, Field(discriminator="type")
]


class HttpSettings(Section):
    enabled: bool | None = Field(
        default=None, description="serve HTTP; default: when an http source is configured"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tls_cert: Path | None = Field(default=None, description="PEM certificate: serve HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="larger bodies get 413")
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="answer 503 when not committed within this time"
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise KeyProblems(
                (missing, "required: tls_cert and tls_key go together, set both or neither")
            )
        return self


class PostgresSinkSettings(Section):
    type: Literal["postgres"]
    required: bool = True


class StdoutSinkSettings(Section):
    type: Literal["stdout"]
    required: bool = False
    buffer: int = Field(default=10_000, ge=1, description="events buffered before dropping")


SUBJECT_PLACEHOLDERS = ("family", "type", "source", "subject", "id")  # what NatsSink fills in
_PLACEHOLDERS_HELP = "placeholders are " + ", ".join(f"{{{n}}}" for n in SUBJECT_PLACEHOLDERS)


class NatsSinkSettings(NatsConnectionSettings):
    type: Literal["nats"]
    required: bool = False
    buffer: int = Field(default=10_000, ge=1)
    subject: str = Field(
        default="events.{family}.{type}",
        description="subject template: {family}, {type}, {source}, {subject}, {id}",
    )
    jetstream: bool = Field(default=False, description="publish with JetStream acks")
    retries: int = Field(default=5, ge=0, description="retries when a publish fails")
    backoff_s: float = Field(default=0.2, ge=0, description="first retry delay, doubled each time")
    max_backoff_s: float = Field(default=30.0, gt=0, description="the longest retry delay")

    @field_validator("subject")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise ValueError(f"{template!r}: {exc}; {_PLACEHOLDERS_HELP}") from None
        for field in fields:
            if field not in SUBJECT_PLACEHOLDERS:
                raise ValueError(
                    f"{template!r}: unknown placeholder {{{field}}}; {_PLACEHOLDERS_HELP}"
                )
        return template


class HttpSinkSettings(Section):
    type: Literal["http"]
    required: bool = False
    buffer: int = Field(default=10_000, ge=1)
    url: str
    mode: Literal["structured", "binary", "batch"] = "structured"
    headers: dict[str, str] = Field(default_factory=dict)
    hmac_secret: SecretStr | None = None
    hmac_header: str = "X-Hub-Signature-256"
    hmac_prefix: str = "sha256="
    timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=5, ge=0, description="retries on 5xx, 429 and network errors")
    backoff_s: float = Field(default=0.2, ge=0, description="first retry delay, doubled each time")
    max_backoff_s: float = Field(default=30.0, gt=0, description="the longest retry delay")


class FolderSinkSettings(Section):
    type: Literal["folder"]
    required: bool = False
    buffer: int = Field(default=10_000, ge=1)
    path: Path
    layout: Literal["event", "batch"] = Field(
        default="batch", description="event: one JSON file per event; batch: one JSONL per batch"
    )


SinkSettings = Annotated[
    PostgresSinkSettings
    | StdoutSinkSettings
    | NatsSinkSettings
    | HttpSinkSettings
    | FolderSinkSettings,
    Field(discriminator="type"),
]


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = Field(
        default="auto", description="auto: console on a terminal, JSON lines otherwise"
    )


_RETENTION = re.compile(r"(\d{1,6}) *(day|week|month|year)s?")
_RETENTION_HELP = 'use "forever" or "<n> days", "<n> weeks", "<n> months" or "<n> years"'


def _retention(value: Any) -> Any:
    """ "forever", or a whole number of days, weeks, months or years, normalised ("30 days")."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a retention: {_RETENTION_HELP}")
    text = " ".join(value.lower().split())
    if text == "forever":
        return text
    match = _RETENTION.fullmatch(text)
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{value!r} is not a retention: {_RETENTION_HELP}")
    amount = int(match[1])
    return f"{amount} {match[2]}{'' if amount == 1 else 's'}"


Retention = Annotated[str, BeforeValidator(_retention)]


class RetentionSettings(Section):
    """How long each family's events are kept; expired time partitions are dropped whole."""

    cdevents: Retention = Field(default="forever", description="CDEvents: delivery history")
    cloudevents: Retention = Field(default="forever", description="other CloudEvents")
    raw: Retention = Field(default="forever", description="plain JSON events")
    ccmessage: Retention = Field(
        default="30 days", description="ClusterCockpit events (api.jobs rows are kept)"
    )
    cclog: Retention = Field(default="forever", description="ClusterCockpit logs")

    def by_family(self) -> dict[str, str | None]:
        """Each family's retention as a PostgreSQL interval; None keeps everything."""
        return {
            family: None if keep == "forever" else keep
            for family, keep in self.model_dump().items()
        }


class MaintenanceSettings(Section):
    interval_s: float = Field(
        default=3600,
        gt=0,
        description="collector run: create partitions ahead and drop expired ones this often",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    sinks: dict[str, SinkSettings] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges the environment over the file itself, to name what is wrong
        # with a variable and to let a variable replace the file's `<key>_file` (and back).
        return (init_settings,)

    @model_validator(mode="after")
    def _check_wiring(self) -> Settings:
        problems: list[tuple[str, str]] = []
        if not any(sink.required for sink in self.sinks.values()):
            problems.append(
                ("sinks", "at least one sink must be required (e.g. type = 'postgres')")
            )
        for section, names in (("sources", self.sources), ("sinks", self.sinks)):
            for name in names:
                if not name.replace("-", "").replace("_", "").isalnum():
                    key = f"{section}.{json.dumps(name)}"
                    problems.append((key, "names use letters, digits, '-' and '_' only"))
        # All http sources share one server: each needs a path of its own.
        paths: dict[str, str] = {}
        for name, source in self.sources.items():
            if isinstance(source, HttpSourceSettings):
                path = source.endpoint(name)
                if path in paths:
                    problems.append(
                        (f"sources.{name}.path", f"{path} is already used by sources.{paths[path]}")
                    )
                paths.setdefault(path, name)
        if problems:
            raise KeyProblems(*problems)
        return self

    @property
    def postgres_sinks(self) -> list[str]:
        return [n for n, s in self.sinks.items() if isinstance(s, PostgresSinkSettings)]


def config_path(explicit: Path | None) -> Path | None:
    """The file to read: the one given, else ./collector.toml when present, else none."""
    if explicit is not None:
        return explicit
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(path: Path | None) -> Settings:
    """Build the one Settings object; raise ConfigError listing every problem by key path."""
    base: dict[str, Any] = {}
    if path is not None:
        try:
            base = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config: file {str(path)!r} does not exist"]) from None
        except OSError as exc:
            raise ConfigError([f"config: cannot read {str(path)!r}: {exc.strerror}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"config: {path}: invalid TOML: {exc}"]) from None
    if "sources" not in base and "sinks" not in base:
        # A file that names no source and no sink (an empty one, or one with only a database
        # URL) keeps the defaults, as having no file does.
        base |= copy.deepcopy(DEFAULTS)
    problems = [
        f"config: {name}: unknown key (environment variable)"
        for name in sorted(os.environ)
        if name.upper().startswith(ENV_PREFIX)
        and name[len(ENV_PREFIX) :].split("__")[0].lower() not in Settings.model_fields
    ]
    environment = _Environment(Settings)()
    problems += [
        f"config: {ENV_PREFIX}{'__'.join(keys).upper()}: {value.problem(keys)}"
        for keys, value in _pop_not_json(environment)
    ]
    try:
        settings = Settings(**_merge(base, environment))
    except ValidationError as exc:
        problems += [line for err in exc.errors() for line in _describe(err)]
    if problems:
        raise ConfigError(problems)
    return settings


@dataclass(frozen=True)
class _NotJson:
    """An environment value for a list or a table that is not JSON."""

    value: str
    kind: Literal["list", "table"]

    def problem(self, keys: tuple[str, ...]) -> str:
        if self.kind == "list":
            # Masked: the value may hold a password, and errors end up in logs too.
            example = json.dumps([mask_url(item.strip()) for item in self.value.split(",")])
            return f"must be a JSON list, e.g. '{example}'"
        variable = f"{ENV_PREFIX}{'__'.join(keys).upper()}__<KEY>"
        return f'must be a JSON object, e.g. \'{{"key": "value"}}\', or set each key as {variable}'


class _Environment(EnvSettingsSource):
    """The COLLECTOR__* variables, with a list or table value that is not JSON kept as _NotJson
    (to be reported by its variable) rather than failing the whole section."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            if not isinstance(field, FieldInfo):  # a free-form key: pydantic-settings copes
                raise
            origin = get_origin(field.annotation) or field.annotation
            return _NotJson(value, "list" if origin in (list, tuple, set) else "table")


def _pop_not_json(
    data: dict[str, Any], keys: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], _NotJson]]:
    found: list[tuple[tuple[str, ...], _NotJson]] = []
    for key, value in list(data.items()):
        if isinstance(value, _NotJson):
            found.append(((*keys, key), data.pop(key)))
        elif isinstance(value, dict):
            found += _pop_not_json(value, (*keys, key))
    return found


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` (the environment) deep-merged over `base` (the file): a value for `<key>`
    replaces the base's `<key>_file`, and a `<key>_file` the base's `<key>`."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
            continue
        merged.pop(key.removesuffix("_file") if key.endswith("_file") else f"{key}_file", None)
        merged[key] = value
    return merged


def _describe(err: Any) -> list[str]:
    loc = _key_path(err["loc"])
    where = ".".join(loc) or "config"
    error = err.get("ctx", {}).get("error")
    if isinstance(error, KeyProblems):
        return [f"config: {'.'.join([*loc, key])}: {message}" for key, message in error.problems]
    if err["type"] == "extra_forbidden":
        return [f"config: {where}: unknown key"]
    if err["type"] == "missing":
        return [f"config: {where}: required key is missing"]
    if err["type"] == "union_tag_not_found":
        return [f"config: {where}.type: required key is missing"]
    if err["type"] == "union_tag_invalid":
        expected = err["ctx"]["expected_tags"]
        return [f"config: {where}.type: {err['ctx']['tag']!r} is not one of {expected}"]
    message = str(err["msg"]).removeprefix("Value error, ")
    return [f"config: {where}: {message}"]


def _key_path(loc: tuple[int | str, ...]) -> list[str]:
    """An error's location as the user's keys: without the tag that a discriminated union puts
    after the name of a source or sink ('folder', 'postgres') and after its `auth` ('token')."""
    keys = [str(part) for part in loc]
    if keys[:1] in (["sources"], ["sinks"]) and len(keys) > 2:
        del keys[2]
        if keys[2:3] == ["auth"] and len(keys) > 3:
            del keys[3]
    return keys


def masked(settings: Settings) -> dict[str, Any]:
    """The merged configuration as plain data, with every secret masked."""
    data: dict[str, Any] = settings.model_dump(mode="json")  # SecretStr dumps as "**********"
    data["database"]["url"] = mask_url(settings.database.url.get_secret_value())
    for table in [*data["sources"].values(), *data["sinks"].values()]:
        if "url" in table:
            table["url"] = mask_url(table["url"])
        if "servers" in table:
            table["servers"] = [mask_url(server) for server in table["servers"]]
        if isinstance(table.get("headers"), dict):
            table["headers"] = mask_headers(table["headers"])
    return data


def unset_keys(settings: BaseModel, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Every key left unset (None: TOML cannot write it), with what leaving it unset means."""
    found: dict[tuple[str, ...], str] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        children = value if isinstance(value, dict) else {None: value}
        for child, item in children.items():
            keys = (*prefix, name) if child is None else (*prefix, name, child)
            if item is None:
                found[keys] = field.description or ""
            elif isinstance(item, BaseModel):
                found |= unset_keys(item, keys)
    return found


_SECRET_NAME = re.compile(r"token|secret|pass|pwd|key|sig|auth|cookie|session|credential", re.I)


def _looks_secret(name: str) -> bool:
    """Whether a query parameter or header of this name carries a secret (access_token,
    api_key, password, signature, authorization, cookie, ...)."""
    return _SECRET_NAME.search(name) is not None


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: "***" if _looks_secret(name) else value for name, value in headers.items()}


def mask_url(url: str) -> str:
    """`url` fit to print and log: its password, and the values of query parameters whose
    names look secret, as ***. A libpq `key=value` string gets its password masked."""
    return _mask(url)[0]


def _mask(url: str) -> tuple[str, list[str]]:
    """The masked URL and the secrets it hid."""
    secrets: list[str] = []
    if "://" not in url:

        def hide(match: re.Match[str]) -> str:
            secrets.append(match[2])
            return f"{match[1]}***"

        return _PASSWORD_PARAM.sub(hide, url), secrets
    scheme, _, rest = url.partition("://")
    # The authority ends at the first / ? or #; libpq allows several hosts in it.
    end = min([i for i in map(rest.find, "/?#") if i >= 0], default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        # Outside PostgreSQL, a user name alone is a token: nats://TOKEN@host.
        if colon or scheme.lower() not in ("postgresql", "postgres"):
            secrets.append(password if colon else user)
            netloc = f"{user}:***@{hosts}" if colon else f"***@{hosts}"
    before_fragment, hash_, fragment = tail.partition("#")
    path, question, query = before_fragment.partition("?")
    params = []
    for param in query.split("&") if query else []:
        name, equals, value = param.partition("=")
        if equals and value and _looks_secret(unquote(name)):
            secrets.append(value)
            param = f"{name}=***"
        params.append(param)
    masked_url = f"{scheme}://{netloc}{path}{question}{'&'.join(params)}{hash_}{fragment}"
    return masked_url, [s for s in secrets if s]


_PASSWORD_PARAM = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)")
