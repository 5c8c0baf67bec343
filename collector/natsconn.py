"""Connecting to NATS, shared by the nats source and the nats sink: credentials, TLS, and
retrying forever — the first connection with backoff, later outages by the client's own
reconnects — each state change logged once, not once per attempt."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import nats
import structlog
from nats.aio.client import Client

from collector.errors import CollectorError
from collector.settings import NatsConnectionSettings, mask_url

log = structlog.get_logger("collector.nats")

MAX_BACKOFF_S = 10.0
ERROR_LOG_INTERVAL_S = 30.0  # while reconnecting, repeat the error at most this often
# What nats-server's -ERR says when it refuses the credentials (wrong, expired or revoked).
REFUSED = ("authorization violation", "authentication expired", "authentication revoked")


class NatsUnavailable(CollectorError):
    pass


async def connect(
    settings: NatsConnectionSettings,
    name: str,
    on_connection: Callable[[bool], None] | None = None,
    stop: anyio.Event | None = None,
) -> Client:
    """Connect, retrying with backoff until a server answers (or `stop` is set: then
    NatsUnavailable); credentials and TLS problems fail at once, retrying cannot fix them.

    `on_connection(False)` is called when an established connection drops, `(True)` when
    it is back."""
    tls: ssl.SSLContext | None = None
    if settings.tls_ca or settings.tls_cert:
        tls = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
        if settings.tls_cert:
            tls.load_cert_chain(str(settings.tls_cert), str(settings.tls_key or settings.tls_cert))
    servers = ", ".join(mask_url(server) for server in settings.servers)
    delay = 0.5
    while True:
        client = Client()
        events = _ConnectionLog(name, client, on_connection)
        failures: list[BaseException] = []
        await _unless_stopped(partial(_attempt, client, events, settings, tls, failures), stop)
        failure = failures[0] if failures else None
        if isinstance(failure, nats.errors.AuthorizationError | ssl.SSLError):
            raise NatsUnavailable(f"nats ({name}): {servers}: {describe(failure)}")
        if client.is_connected:
            break
        with contextlib.suppress(nats.errors.Error, OSError):
            await client.close()
        if stop is not None and stop.is_set():
            raise NatsUnavailable(f"nats ({name}): stopped before {servers} answered")
        log.warning(
            "nats_unavailable",
            name=name,
            servers=servers,
            error=describe(failure) if failure is not None else "no answer",
            retry_in_s=delay,
        )
        await _unless_stopped(partial(anyio.sleep, delay), stop)
        delay = min(delay * 2, MAX_BACKOFF_S)
    # Connected: from now on the client reconnects by itself, forever (NATS restarts must
    # not stop collector).
    client.options["allow_reconnect"] = True
    client.options["max_reconnect_attempts"] = -1
    events.established = True
    log.info("nats_connected", name=name, server=_server(client))
    return client


async def _attempt(
    client: Client,
    events: _ConnectionLog,
    settings: NatsConnectionSettings,
    tls: ssl.SSLContext | None,
    failures: list[BaseException],
) -> None:
    try:
        await client.connect(
            servers=settings.servers,
            name=f"collector-{events.name}",
            user=settings.user,
            password=settings.password.get_secret_value() if settings.password else None,
            token=settings.token.get_secret_value() if settings.token else None,
            nkeys_seed=str(settings.nkey_seed_file) if settings.nkey_seed_file else None,
            user_credentials=str(settings.creds_file) if settings.creds_file else None,
            tls=tls,
            connect_timeout=max(1, round(settings.connect_timeout_s)),
            allow_reconnect=False,  # the first connection: connect() retries, with backoff
            reconnect_time_wait=1,
            disconnected_cb=events.disconnected,
            reconnected_cb=events.reconnected,
            error_cb=events.error,
        )
    except nats.errors.Error as exc:
        # While connecting, nats-py raises the server's refusal as a plain Error (it makes
        # an AuthorizationError of it only later): tell it apart, retrying cannot help.
        refused = any(words in str(exc).lower() for words in REFUSED)
        failures.append(_Refused(str(exc)) if refused else exc)
    except (OSError, TimeoutError) as exc:
        failures.append(exc)


async def _unless_stopped(work: Callable[[], Awaitable[None]], stop: anyio.Event | None) -> None:
    """Run `work`, abandoning it when `stop` is set."""
    if stop is None:
        await work()
        return
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        await work()
        tg.cancel_scope.cancel()


class _ConnectionLog:
    """The client's callbacks: state changes logged once, repeated errors throttled."""

    def __init__(
        self, name: str, client: Client, on_connection: Callable[[bool], None] | None
    ) -> None:
        self.name = name
        self.client = client
        self.on_connection = on_connection
        self.established = False  # before that, connect() reports failures itself
        self.last_error = 0.0
        self.failures = 0  # errors since the connection dropped

    async def disconnected(self) -> None:
        if not self.established:
            return
        if self.client.is_closed:  # our own close(), not an outage
            log.debug("nats_closed", name=self.name)
            return
        log.warning("nats_disconnected", name=self.name)
        if self.on_connection is not None:
            self.on_connection(False)

    async def reconnected(self) -> None:
        log.info(
            "nats_reconnected",
            name=self.name,
            server=_server(self.client),
            errors=self.failures,
        )
        self.last_error, self.failures = 0.0, 0
        if self.on_connection is not None:
            self.on_connection(True)

    async def error(self, exc: Exception) -> None:
        if not self.established:
            # The client would try again by itself (and silently, up to 60 times): end the
            # attempt at the first failure instead; connect() retries with its backoff.
            raise exc
        self.failures += 1
        now = time.monotonic()
        if now - self.last_error >= ERROR_LOG_INTERVAL_S:
            log.warning("nats_error", name=self.name, error=describe(exc), errors=self.failures)
            self.last_error = now


class _Refused(nats.errors.AuthorizationError):
    """Credentials refused while connecting, in the server's words (nats-py's
    AuthorizationError says only "authorization failed")."""

    def __str__(self) -> str:
        return str(self.args[0])


def describe(exc: BaseException) -> str:
    """An error of nats-py as text (some have an empty message)."""
    return str(exc) or type(exc).__name__


def _server(client: Client) -> str:
    url = client.connected_url
    return f"{url.hostname}:{url.port}" if url is not None else "?"
