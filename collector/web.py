"""The one HTTP server: HTTP sources mounted by path, plus /healthz, /readyz and /metrics.

A plain ASGI app (no framework: routing is a dict lookup) served by uvicorn with uvloop and
httptools. collector owns SIGINT/SIGTERM: on stop the server stops listening, lets requests
in flight get their commit, then returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import anyio
import orjson
import structlog
import uvicorn

from collector.errors import CollectorError
from collector.ports import BodyTooLarge, HttpRequest, HttpResponse
from collector.settings import HttpSettings

log = structlog.get_logger("collector.web")

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_HEADER_NAMES = 256  # decoded header names kept for the next requests


class ClientDisconnected(Exception):
    pass


class WebApp:
    """Routes (method, path) to handlers; unknown paths 404, wrong methods 405; HEAD is
    answered wherever GET is (load balancers and uptime checks probe with it)."""

    def __init__(self) -> None:
        self.routes: dict[str, dict[str, Handler]] = {}
        self._header_names: dict[bytes, str] = {}  # as received → decoded, lower case

    def _header_name(self, raw: bytes) -> str:
        name = raw.lower().decode("latin-1")
        if len(self._header_names) < MAX_HEADER_NAMES:  # senders repeat a few dozen names
            self._header_names[raw] = name
        return name

    def add(self, method: str, path: str, handler: Handler) -> None:
        methods = self.routes.setdefault(path, {})
        if method in methods:
            raise ValueError(f"two handlers for {method} {path}")
        methods[method] = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        head = method == "HEAD"  # a GET's answer without its body
        methods = self.routes.get(path)
        if methods is None:
            response = problem(404, "Not found", f"no endpoint at {path}", path)
            await _send(send, response, head=head)
            return
        handler = methods.get("GET" if head else method)
        if handler is None:
            allow = ", ".join(sorted([*methods, *(["HEAD"] if "GET" in methods else [])]))
            response = problem(405, "Method not allowed", f"{path} accepts {allow}", path)
            response.headers.append(("allow", allow))
            await _send(send, response, head=head)
            return
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        names = self._header_names
        headers = {
            names.get(n) or self._header_name(n): v.decode("latin-1") for n, v in raw_headers
        }
        if len(headers) != len(raw_headers):  # a repeated header: join its values
            headers = {}
            for raw_name, raw_value in raw_headers:
                name = raw_name.lower().decode("latin-1")
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raw_query: bytes = scope.get("query_string", b"")
        query = dict(parse_qsl(raw_query.decode("latin-1"))) if raw_query else {}

        async def read_body(limit: int) -> bytes:
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

        request = HttpRequest(method, path, query, headers, read_body)
        try:
            response = await handler(request)
        except ClientDisconnected:
            return
        await _send(send, response, head=head)


def problem(status: int, title: str, detail: str, instance: str) -> HttpResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    return HttpResponse(status, orjson.dumps(body), [("content-type", "application/problem+json")])


def json_response(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(body), [("content-type", "application/json")])


async def _send(send: Send, response: HttpResponse, *, head: bool = False) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # collector handles SIGINT/SIGTERM itself and stops the server in order.
        yield


async def serve(
    app: ASGIApp,
    settings: HttpSettings,
    stop: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `stop`, then finish requests in flight; reports (host, port) when listening.

    `app` is the collector's WebApp; `collector bench http` serves an empty app here too, so
    that its baseline runs on exactly this server stack.
    """
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
        timeout_keep_alive=30,
        http="httptools",
        # Nothing here reads the client's address or scheme: no middleware per request.
        proxy_headers=False,
    )
    server = _Server(config)
    failed = False

    async def run() -> None:
        nonlocal failed
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits when it cannot bind
            failed = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        while not server.started:
            if failed:
                raise CollectorError(
                    f"http: cannot listen on {settings.host}:{settings.port} (in use, or not "
                    "allowed): set http.port or http.host"
                )
            await anyio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        scheme = "https" if settings.tls_cert else "http"
        log.info("http_listening", url=f"{scheme}://{host}:{port}", host=host, port=port)
        task_status.started((host, port))
        await stop.wait()
        server.should_exit = True
