"""Connecting to NATS, shared by the nats source and the nats sink: credentials, TLS, and
reconnecting forever with backoff, each state change logged."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import nats
import structlog
from nats.aio.client import Client

from collector.errors import CollectorError
from collector.settings import NatsConnectionSettings

log = structlog.get_logger("collector.nats")


class NatsUnavailable(CollectorError):
    pass


async def connect(
    settings: NatsConnectionSettings,
    name: str,
    on_connection: Callable[[bool], None] | None = None,
) -> Client:
    """Connect (NatsUnavailable when no server answers); later outages are retried forever.

    `on_connection(False)` is called when the connection drops, `(True)` when it is back.
    """
    tls: ssl.SSLContext | None = None
    if settings.tls_ca or settings.tls_cert:
        tls = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
        if settings.tls_cert:
            tls.load_cert_chain(str(settings.tls_cert), str(settings.tls_key or settings.tls_cert))

    async def disconnected() -> None:
        if client.is_closed:  # our own close(), not an outage
            log.debug("nats_closed", name=name)
            return
        log.warning("nats_disconnected", name=name)
        if on_connection is not None:
            on_connection(False)

    async def reconnected() -> None:
        log.info("nats_reconnected", name=name, server=str(client.connected_url))
        if on_connection is not None:
            on_connection(True)

    async def error(exc: Exception) -> None:
        log.warning("nats_error", name=name, error=str(exc) or type(exc).__name__)

    client = Client()
    try:
        await client.connect(
            servers=settings.servers,
            name=f"collector-{name}",
            user=settings.user,
            password=settings.password.get_secret_value() if settings.password else None,
            token=settings.token.get_secret_value() if settings.token else None,
            nkeys_seed=str(settings.nkey_seed_file) if settings.nkey_seed_file else None,
            user_credentials=str(settings.creds_file) if settings.creds_file else None,
            tls=tls,
            connect_timeout=max(1, round(settings.connect_timeout_s)),
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # forever: NATS restarts must not stop collector
            reconnect_time_wait=1,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise NatsUnavailable(
            f"nats ({name}): cannot connect to {', '.join(settings.servers)}: "
            f"{str(exc) or type(exc).__name__}"
        ) from None
    log.info("nats_connected", name=name, server=str(client.connected_url))
    return client
