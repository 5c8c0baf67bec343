"""The `collector` command: one function per subcommand; errors become one clear stderr message.

Every option names the environment variable behind it in --help.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson

from collector import __version__, demo_events
from collector.errors import CollectorError, ConfigError, MigrationError
from collector.settings import (
    ENV_PREFIX,
    Settings,
    config_path,
    load_settings,
    masked,
    unset_keys,
)

CONFIG_ENV = "COLLECTOR_CONFIG"
MAX_SERVICES = len(demo_events.services(0, 10_000))
GC_THRESHOLD = 10_000  # young objects allocated between two collections (CPython default 700)


def main(argv: Sequence[str] | None = None) -> int:
    # The benchmarks' parsers import what they measure: only for `collector bench`.
    parser = build_parser(benchmarks="bench" in (sys.argv[1:] if argv is None else argv))
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Only `db psql` takes arguments of another program (psql's own -c, -t, -A, ...).
        if getattr(args, "handler", None) is not cmd_db_psql:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.psql_args = [*unknown, *args.psql_args]
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"collector: {problem}", file=sys.stderr)
        return 1
    except CollectorError as exc:
        print(f"collector: {exc}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:
        # A task (a source, a sink) failed with one of our errors: say it like the others.
        matched, _ = group.split(CollectorError)
        if matched is None:
            raise
        for error in _leaves(matched):
            print(f"collector: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Commands import psycopg when they use it (it is slow to import): not imported, not
        # its error. Not translated where it happened: one line, with what usually fixes it.
        psycopg = sys.modules.get("psycopg")
        if psycopg is None or not isinstance(exc, psycopg.Error):
            raise
        print(f"collector: error: {database_problem(exc)}", file=sys.stderr)
        return 1


def database_problem(exc: Exception) -> str:
    """A database error the commands do not expect, in one line with its likely fix."""
    import psycopg

    message = " ".join(str(exc).split()) or type(exc).__name__
    problem = f"database: {message}"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return (
            f"{problem}: connect as the owner of the collector schema (the role that ran "
            "`collector migrate`), not a collector_reader role"
        )
    return problem


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def build_parser(*, benchmarks: bool = True) -> argparse.ArgumentParser:
    """The command line; without `benchmarks`, `bench` lists no benchmarks (their modules are
    slow to import)."""
    from collector import send as sending

    parser = argparse.ArgumentParser(
        prog="collector",
        description="Collect CDEvents, CloudEvents and JSON events into PostgreSQL; "
        "query them through the `api` schema.",
        epilog=f"Every configuration key can be overridden by an environment variable "
        f"{ENV_PREFIX}SECTION__KEY, e.g. {ENV_PREFIX}DATABASE__URL or "
        f"{ENV_PREFIX}SOURCES__INBOX__PATH.",
    )
    parser.add_argument("--version", action="version", version=f"collector {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        type=Path,
        default=_env_path(CONFIG_ENV),
        help=f"TOML configuration file (env {CONFIG_ENV}; default ./collector.toml when "
        "present, else the embedded defaults)",
    )
    # `db psql` passes its arguments on to psql, whose -c runs a command: only --config here.
    long_config_only = argparse.ArgumentParser(add_help=False)
    long_config_only.add_argument(
        "--config",
        type=Path,
        default=_env_path(CONFIG_ENV),
        help=f"TOML configuration file (env {CONFIG_ENV}; default ./collector.toml when "
        "present, else the embedded defaults)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="ingest until SIGINT/SIGTERM/SIGHUP, then drain",
        description="Start the sources, pipeline and sinks; on SIGINT, SIGTERM or SIGHUP stop "
        "reading, commit what is in flight, and exit (during the start, exit at once). A second "
        "signal exits at once (unacknowledged input is delivered again after restart).",
    )
    run.set_defaults(handler=cmd_run)

    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="apply pending database migrations",
        description="Apply pending migrations from sql/migrations in order (one transaction "
        "each, under an advisory lock).",
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help="apply nothing; list pending migrations and exit 1 if any",
    )
    _add_wait(migrate)
    migrate.set_defaults(handler=cmd_migrate)

    config = commands.add_parser(
        "config",
        parents=[common],
        help="validate or print the configuration",
        description="Validate the merged configuration (file + environment) and list every "
        "error with its key path, or print it as TOML with secrets masked.",
    )
    mode = config.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="validate only (the default)")
    mode.add_argument(
        "--print",
        action="store_true",
        dest="print_",
        help="print the merged configuration as TOML, secrets masked",
    )
    config.set_defaults(handler=cmd_config)

    maintain = commands.add_parser(
        "maintenance",
        parents=[common],
        help="create partitions ahead and drop expired ones, once",
        description="Run the maintenance `collector run` does every maintenance.interval_s: "
        "create the coming time partitions, drop those past their family's retention "
        "([retention]), and print what was created, dropped and kept (table busy) per family.",
    )
    _add_wait(maintain)
    maintain.set_defaults(handler=cmd_maintenance)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="store realistic demo data: CI/CD deliveries and an HPC cluster",
        description="Store realistic demo data through the ingest path `collector run` uses "
        "(normalised and decoded as the sources do, then the pipeline and the postgres sink): "
        "a fleet of services delivering changes — pipeline runs, tests (some flaky), builds, "
        "artifacts, deployments, rollbacks and incidents — over --days, in groups of elite, "
        "high and medium DORA performers; and two ClusterCockpit clusters' jobs, node events "
        "and logs over the last 14 days (less when --days or the retention is shorter). Ids "
        "come from --seed and times are relative to the first run with that seed, so running "
        "it again stores nothing new. Applies migrations as `collector run` does "
        "(database.migrate).",
    )
    demo.add_argument(
        "--database-url",
        default=None,
        help="database to fill (default: the configured one, env "
        f"{ENV_PREFIX}DATABASE__URL; empty: the embedded server)",
    )
    demo.add_argument(
        "--days", type=positive, default=90, help="history of the CI/CD data (default 90)"
    )
    demo.add_argument(
        "--services",
        type=positive,
        default=200,
        help=f"services in the fleet, at most {MAX_SERVICES} (default 200)",
    )
    demo.add_argument(
        "--nodes",
        type=positive,
        default=64,
        help="compute nodes of the HPC clusters (default 64; a quarter with GPUs)",
    )
    demo.add_argument("--seed", type=int, default=1, help="what the data is made of (default 1)")
    _add_wait(demo)
    demo.set_defaults(handler=cmd_demo)

    db = commands.add_parser("db", help="the database collector uses")
    db_commands = db.add_subparsers(title="commands", metavar="COMMAND")
    url = db_commands.add_parser(
        "url",
        parents=[common],
        help="print the database URL `collector run` uses",
        description="Print the URL of the database `collector run` uses; for the embedded "
        'one it is valid while `collector run` runs, so `psql "$(collector db url)"` works.',
    )
    url.set_defaults(handler=cmd_db_url)
    psql = db_commands.add_parser(
        "psql",
        parents=[long_config_only],
        help="open psql (bundled with the embedded server)",
        description="Run psql on the database `collector run` uses. Extra arguments go to psql.",
    )
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="arguments for psql")
    psql.set_defaults(handler=cmd_db_psql)

    docs = commands.add_parser("docs", help="generated documentation")
    docs_commands = docs.add_subparsers(title="documents", metavar="DOCUMENT")
    sql_reference = docs_commands.add_parser(
        "sql",
        parents=[common],
        help="write the SQL API reference from the database catalog",
        description="Write the reference of schema `api` (every view, column and function with "
        "its COMMENT, and an example query) from the catalog of the configured, migrated "
        "database. Fails, naming them, when an api object lacks a comment or an example.",
    )
    sql_reference.add_argument(
        "--database-url",
        default=None,
        help="database to read the catalog from (default: the configured one, env "
        f"{ENV_PREFIX}DATABASE__URL; empty: the embedded server)",
    )
    sql_reference.add_argument(
        "--output",
        type=Path,
        default=Path("docs/sql-api.md"),
        help="file to write (default docs/sql-api.md)",
    )
    sql_reference.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the file differs from what would be written",
    )
    _add_wait(sql_reference)
    sql_reference.set_defaults(handler=cmd_docs_sql)
    env = sending.ENV
    send = commands.add_parser(
        "send",
        help="post events to a collector or any CloudEvents endpoint",
        description="POST events — JSON, a CloudEvent, NDJSON or InfluxDB line protocol — and "
        "print the server's answer. Exit 1 with the server's problem detail when they are not "
        "accepted. Secrets are never printed; pass them by environment or file rather than on "
        "the command line, where other users can see them.",
    )
    send.add_argument(
        "-d",
        "--data",
        required=True,
        help="the body: inline JSON or line protocol, @FILE, or @- for standard input",
    )
    send.add_argument(
        "--url",
        default=os.environ.get(f"{env}URL") or sending.DEFAULT_URL,
        help=f"where to POST (env {env}URL; default {sending.DEFAULT_URL}, the default http "
        "source); line protocol: e.g. http://host:8080/api/write?cluster=NAME",
    )
    send.add_argument(
        "--format",
        default=os.environ.get(f"{env}FORMAT") or "auto",
        metavar="{" + ",".join(sending.FORMATS) + "}",
        help=f"content type (env {env}FORMAT; default auto: a JSON object or array is "
        "application/json, one with specversion application/cloudevents+json, several JSON "
        "lines application/x-ndjson, anything else line protocol as text/plain)",
    )
    send.add_argument(
        "--gzip",
        action="store_true",
        default=_env_flag(f"{env}GZIP"),
        help=f"compress the body, Content-Encoding: gzip (env {env}GZIP=1)",
    )
    send.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        dest="headers",
        metavar="'NAME: VALUE'",
        help="an extra header, repeatable; overrides the one collector send would set",
    )
    send.add_argument("--token", help=f"bearer token: Authorization: Bearer TOKEN (env {env}TOKEN)")
    send.add_argument(
        "--token-file", type=Path, help=f"read the bearer token from a file (env {env}TOKEN_FILE)"
    )
    send.add_argument(
        "--hmac-secret",
        help=f"sign the body sent (after --gzip) with HMAC-SHA256 (env {env}HMAC_SECRET)",
    )
    send.add_argument(
        "--hmac-secret-file",
        type=Path,
        help=f"read the HMAC secret from a file (env {env}HMAC_SECRET_FILE)",
    )
    send.add_argument(
        "--hmac-header",
        default=os.environ.get(f"{env}HMAC_HEADER") or "X-Hub-Signature-256",
        help=f"the signature's header (env {env}HMAC_HEADER; default %(default)s)",
    )
    send.add_argument(
        "--hmac-prefix",
        default=os.environ.get(f"{env}HMAC_PREFIX", "sha256="),
        help=f"written before the signature (env {env}HMAC_PREFIX; default %(default)s)",
    )
    send.add_argument(
        "--hmac-encoding",
        default=os.environ.get(f"{env}HMAC_ENCODING") or "hex",
        metavar="{hex,base64}",
        help=f"the signature's encoding (env {env}HMAC_ENCODING; default %(default)s)",
    )
    send.add_argument(
        "--timeout",
        type=float,
        default=os.environ.get(f"{env}TIMEOUT") or "60",
        help=f"seconds to wait for the answer (env {env}TIMEOUT; default %(default)s)",
    )
    send.set_defaults(handler=cmd_send)

    bench = commands.add_parser("bench", help="benchmarks that print figures and ratios")
    bench_commands = bench.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    if benchmarks:
        from collector import bench as benchmark_commands

        benchmark_commands.add_parsers(bench_commands, common)
    return parser


def positive(text: str) -> int:
    """An argparse type; its error reads `argument --days: must be a positive integer, not '0'`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _add_wait(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--wait",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="retry for so long while the database is unreachable or starting (default 30; "
        "0: try once); a missing database or role, refused credentials or a malformed URL "
        "fail at once",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, not {text!r}")
    return value


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _settings(args: argparse.Namespace) -> Settings:
    from collector import logs

    settings = load_settings(config_path(args.config))
    logs.configure(settings.log.level, settings.log.format)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from collector import app  # imported here: psycopg and uvicorn are slow to import

    _tune_gc()
    anyio.run(app.run, settings, backend_options={"use_uvloop": _has_uvloop()})
    return 0


def _tune_gc() -> None:
    """Collect cycles less often in a long-running ingest process.

    Every event is a few young objects that die once committed and hold no reference cycles;
    with the default threshold (700) the collector traverses them over and over, about a
    quarter of the ingest CPU. Startup objects (modules, settings) are frozen out of every
    collection.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def cmd_migrate(args: argparse.Namespace) -> int:
    from collector.db import connection
    from collector.db import migrate as migrations
    from collector.db.embedded import database_url

    settings = _settings(args)

    async def go(url: str) -> int:
        async with await connection.connect(url, args.wait) as conn:
            known = migrations.load_migrations()
            status = await migrations.status(conn, known)
            if args.check:
                for migration in status.pending:
                    print(f"pending: {migration.file_name}")
                if status.pending:
                    print(f"{len(status.pending)} pending migration(s): run `collector migrate`")
                    return 1
                print(f"up to date: {len(status.applied)} migration(s) applied")
                return 0
            applied = await migrations.migrate(conn, known)
            for migration in applied:
                print(f"applied: {migration.file_name}")
            print(f"up to date: {len(status.applied) + len(applied)} migration(s) applied")
            return 0

    with database_url(settings) as url:
        result: int = anyio.run(go, url)
    return result


def cmd_maintenance(args: argparse.Namespace) -> int:
    from collector import maintenance
    from collector.db import connection
    from collector.db import migrate as migrations
    from collector.db.embedded import database_url

    settings = _settings(args)

    async def go(url: str) -> list[maintenance.FamilyMaintenance]:
        async with await connection.connect(url, args.wait) as conn:
            await migrations.migrate_or_check(conn, settings.database.migrate)
            return await maintenance.maintain(conn, settings.retention)

    with database_url(settings) as url:
        done = anyio.run(go, url)
    for line in maintenance.describe(done):
        print(line)
    created = sum(len(f.created) for f in done)
    dropped = sum(len(f.dropped) for f in done)
    kept = sum(len(f.kept) for f in done)
    busy = f", {kept} kept (table busy)" if kept else ""
    print(f"maintenance done: {created} partition(s) created, {dropped} dropped{busy}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.services > MAX_SERVICES:
        raise CollectorError(f"demo: --services {args.services}: at most {MAX_SERVICES}")
    # Progress goes to stderr; the pipeline's per-batch log lines would drown it.
    if settings.log.level in ("debug", "info"):
        from collector import logs

        logs.configure("warning", settings.log.format)
    from collector import demo
    from collector.db.embedded import database_url

    options = demo.DemoOptions(
        seed=args.seed, services=args.services, days=args.days, nodes=args.nodes, wait_s=args.wait
    )
    if args.database_url:
        summary = demo.run(args.database_url, settings, options)
    else:
        with database_url(settings) as url:
            summary = demo.run(url, settings, options)
    for line in summary.lines():
        print(line)
    return 0


def cmd_docs_sql(args: argparse.Namespace) -> int:
    from collector import docs
    from collector.db import connection
    from collector.db import migrate as migrations
    from collector.db.embedded import database_url

    settings = _settings(args)

    async def go(url: str) -> str:
        async with await connection.connect(url, args.wait) as conn:
            status = await migrations.status(conn, migrations.load_migrations())
            if status.pending:
                raise MigrationError(
                    f"database has {len(status.pending)} pending migration(s): run "
                    "`collector migrate` first, so the reference describes this collector's schema"
                )
            catalog = await docs.read_catalog(conn)
        problems = catalog.problems()
        if problems:
            raise CollectorError(
                "docs: the SQL API is not fully documented:\n  " + "\n  ".join(problems)
            )
        return docs.render(catalog)

    if args.database_url:
        text: str = anyio.run(go, args.database_url)
    else:
        with database_url(settings) as url:
            text = anyio.run(go, url)
    output: Path = args.output
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if args.check:
        if current != text:
            print(f"{output} is stale: run `collector docs sql` and commit the result")
            return 1
        print(f"{output} is up to date")
        return 0
    if current != text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    else:
        print(f"{output} is up to date")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    settings = load_settings(path)
    if args.print_:
        print(to_toml(masked(settings), unset_keys(settings)), end="")
    else:
        where = str(path) if path else "embedded defaults (no collector.toml)"
        print(f"configuration OK: {where}")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    print(_database_url(_settings(args)))
    return 0


def cmd_db_psql(args: argparse.Namespace) -> int:
    from collector.db.embedded import psql_path

    settings = _settings(args)
    executable = str(psql_path())
    extra = [a for a in args.psql_args if a != "--"]
    os.execv(executable, [executable, _database_url(settings), *extra])  # noqa: S606


def cmd_send(args: argparse.Namespace) -> int:
    from collector import send as sending

    env = sending.ENV
    if args.format not in sending.FORMATS:
        raise sending.SendFailed(
            f"send: --format / {env}FORMAT {args.format!r}: use one of "
            + ", ".join(sending.FORMATS)
        )
    if args.hmac_encoding not in ("hex", "base64"):
        raise sending.SendFailed(
            f"send: --hmac-encoding / {env}HMAC_ENCODING {args.hmac_encoding!r}: use hex or base64"
        )
    if args.timeout <= 0:
        raise sending.SendFailed("send: --timeout must be positive")
    secret = sending.credential(args.hmac_secret, args.hmac_secret_file, "hmac-secret", os.environ)
    options = sending.SendOptions(
        url=args.url,
        format=args.format,
        headers=tuple(sending.parse_header(h) for h in args.headers),
        token=sending.credential(args.token, args.token_file, "token", os.environ),
        hmac=sending.Hmac(secret, args.hmac_header, args.hmac_prefix, args.hmac_encoding)
        if secret
        else None,
        gzip=args.gzip,
        timeout_s=args.timeout,
    )
    answer = sending.send(sending.read_data(args.data), options)
    if answer.text:
        print(answer.text if answer.text.endswith("\n") else answer.text + "\n", end="")
    return 0


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _database_url(settings: Settings) -> str:
    from collector.db.embedded import layout

    return settings.database.url.get_secret_value() or layout(settings.database.data_dir).url


def to_toml(
    data: dict[str, Any],
    notes: Mapping[tuple[str, ...], str] | None = None,
    path: tuple[str, ...] = (),
) -> str:
    """A small TOML writer for the configuration's shape: tables of scalars and string lists.

    TOML has no null: an unset key (None) is written as a comment, with its note from `notes`
    (keyed by key path) saying what leaving it unset means."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = []
    for key, value in scalars.items():
        if value is None:
            note = (notes or {}).get((*path, key))
            lines.append(f"# {_toml_key(key)} = …  # not set" + (f"; {note}" if note else ""))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    out = ""
    if path and (lines or not tables):
        out += f"[{'.'.join(_toml_key(k) for k in path)}]\n"
    if lines:
        out += "\n".join(lines) + "\n\n"
    for key, value in tables.items():
        out += to_toml(value, notes, (*path, key))
    return out


def _toml_key(key: str) -> str:
    bare = key.isascii() and key.replace("_", "").replace("-", "").isalnum()
    return key if bare else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also forbids a raw DEL.
    return orjson.dumps(text).decode().replace("\x7f", "\\u007f")


if __name__ == "__main__":
    raise SystemExit(main())
