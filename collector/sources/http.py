"""The HTTP source: webhooks (CloudEvents HTTP binding, CDEvents, JSON, NDJSON) and
ClusterCockpit line protocol, answered only once the events are committed (ack = "commit").

Order of work per request: auth on the headers, a pipeline that can commit, the body (size-limited
while streaming), auth on the body as sent, decompression, decoding, then the delivery. Errors
are RFC 9457 problem+json naming the event index (or line) and field; bad input never gets a 5xx.
A full queue is waited for up to queue_wait_s, then 503.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import anyio
import orjson
import structlog

from collector import ccmessage
from collector.auth import (
    Authenticator,
    AuthError,
    HmacAuth,
    JwtAuth,
    NoAuth,
    TokenAuth,
)
from collector.errors import PipelineClosed
from collector.events import (
    BOM,
    Event,
    Invalid,
    InvalidJson,
    Origin,
    RejectedEvent,
    binary_cdevent,
    binary_cloudevent,
    events_from_json,
    events_from_lines,
    normalise,
)
from collector.metrics import Metrics
from collector.ports import BodyTooLarge, Delivery, HttpRequest, HttpResponse, Intake
from collector.settings import (
    HmacAuthSettings,
    HttpSettings,
    HttpSourceSettings,
    JwtAuthSettings,
    NoAuthSettings,
    TokenAuthSettings,
)

log = structlog.get_logger("collector.sources.http")

GZIP_EXPANSION = 10  # a gzip body may expand to this many times max_body_bytes
JSON_TYPES = {"application/json", "text/json"}
FORM = "application/x-www-form-urlencoded"  # GitHub's default webhook content type
NDJSON_TYPES = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
}


class Timeouts:
    """Timeouts of one length for many requests' awaits, without an event loop timer each (one
    costs ~4 µs to arm and cancel, anyio.move_on_after ~18): they expire in the order they
    start, so one timer, armed for the oldest still running, serves them all."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._running: deque[Timeout] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, task: asyncio.Task[Any]) -> Timeout:
        """A timeout that cancels `task` unless exited in time; `with` it around the await."""
        loop = task.get_loop()
        running = self._running
        if loop is not self._loop:  # another event loop (tests run several): a fresh start
            running.clear()
            self._timer = None
            self._loop = loop
        while running and running[0].task is None:  # finished
            running.popleft()
        timeout = Timeout(task, loop.time() + self.seconds)
        running.append(timeout)
        if self._timer is None:
            self._timer = loop.call_at(timeout.deadline, self._expire, loop)
        return timeout

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        running = self._running
        while running and (running[0].task is None or running[0].deadline <= now):
            running.popleft().expire()
        self._timer = loop.call_at(running[0].deadline, self._expire, loop) if running else None


class Timeout:
    """One await's timeout (see Timeouts); `expired` says whether it cut the await short. As
    with asyncio.timeout, a cancellation that is not ours goes on."""

    __slots__ = ("deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task: asyncio.Task[Any] | None = task  # None once finished
        self.deadline = deadline
        self.expired = False

    def expire(self) -> None:
        if self.task is not None:
            self.expired = True
            self.task.cancel()

    def __enter__(self) -> Timeout:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        task, self.task = self.task, None
        if not self.expired or task is None:
            return False
        # Swallow the cancellation only if it was ours alone.
        return task.uncancel() == 0 and kind is asyncio.CancelledError


class Problem(Exception):
    """An RFC 9457 problem answered to the sender."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or []
        self.extra = extra

    def response(self, instance: str) -> HttpResponse:
        body = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }
        return HttpResponse(
            self.status,
            orjson.dumps(body),
            [("content-type", "application/problem+json"), *self.headers],
        )


def build_authenticator(settings: HttpSourceSettings) -> Authenticator:
    auth = settings.auth
    if isinstance(auth, NoAuthSettings):
        return NoAuth()
    if isinstance(auth, TokenAuthSettings):
        return TokenAuth([auth.token.get_secret_value()], header=auth.header)
    if isinstance(auth, HmacAuthSettings):
        return HmacAuth(
            [s.get_secret_value() for s in auth.secrets],
            header=auth.header,
            prefix=auth.prefix,
            encoding=auth.encoding,
        )
    if isinstance(auth, JwtAuthSettings):
        return JwtAuth(auth.public_keys)
    raise AssertionError(auth)


class HttpSource:
    def __init__(
        self,
        name: str,
        settings: HttpSourceSettings,
        http: HttpSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.metrics = (metrics or Metrics()).source(name)
        self.settings = settings
        self.http = http
        self.path = settings.endpoint(name)
        self.auth = build_authenticator(settings)
        self._intake: Intake | None = None
        self._request_timeouts = Timeouts(http.request_timeout_s)
        self._queue_timeouts = Timeouts(settings.queue_wait_s)

    async def run(self, intake: Intake, stop: anyio.Event) -> None:
        """HTTP sources are driven by the server; this only holds the pipeline until stop."""
        self._intake = intake
        await stop.wait()
        self._intake = None

    async def handle(self, request: HttpRequest) -> HttpResponse:
        try:
            response = await self._handle(request)
        except Problem as problem:
            response = problem.response(request.path)
        self.metrics.answered(response.status)
        return response

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        try:
            self.auth.before_body(request.headers)
        except AuthError as exc:
            raise _auth_problem(exc) from None
        intake = self._intake
        if intake is None:
            raise _unavailable("collector is starting or shutting down")
        if not intake.healthy:  # a full queue is waited for (queue_wait_s), a failing one not
            raise _unavailable("collector cannot accept events now (database down, or stopping)")
        task = asyncio.current_task()
        assert task is not None
        raw = await self._body(request, task)
        try:
            # Signatures cover the bytes as sent; nothing is decompressed before auth passes.
            self.auth.after_body(request.headers, raw)
        except AuthError as exc:
            raise _auth_problem(exc) from None
        received_at = datetime.now(UTC)
        settings = self.settings
        headers = request.headers
        origin = Origin(
            received_via=self.name,
            received_at=received_at,
            default_type=(settings.type_header and headers.get(settings.type_header.lower()))
            or settings.event_type,
            default_source=settings.event_source,
            default_id=(settings.id_header and headers.get(settings.id_header.lower())) or None,
            no_type=settings.type_header and f"type: the {settings.type_header} header is missing",
        )
        extra: dict[str, Any] = {}
        body = raw
        try:
            body = self._decompressed(request, raw)
            if self.settings.format == "lineprotocol":
                events, rejected, extra = self._decode_lines(request, body, origin)
            else:
                events, rejected = self._decode_events(request, body, origin)
        except Problem as problem:
            if problem.status == 400:
                # The whole body is unusable: it is still stored, with the reason.
                whole = RejectedEvent(
                    problem.detail,
                    body,
                    received_at,
                    self.name,
                    None,
                    {"content_type": request.headers.get("content-type", "")},
                )
                self.metrics.received(1)
                await self._deliver(intake, Delivery(events=[], rejected=[whole]), task)
            raise
        if len(events) + len(rejected) > self.settings.max_events:
            raise Problem(
                413,
                "Too many events",
                f"{len(events) + len(rejected)} events in one request; at most "
                f"{self.settings.max_events} (sources.{self.name}.max_events)",
            )
        self.metrics.received(len(events) + len(rejected))
        delivery = Delivery(events=events, rejected=rejected)
        await self._deliver(intake, delivery, task)
        ids = [e.id for e in events]
        if rejected:
            errors = [{"location": r.location, "detail": r.reason} for r in rejected]
            raise Problem(
                400,
                "Invalid events",
                f"{len(rejected)} of {len(rejected) + len(events)} rejected; "
                + "; ".join(r.message for r in rejected[:5])
                + ("; …" if len(rejected) > 5 else ""),
                errors=errors,
                **self._counts(delivery),
                ids=ids,
                **extra,
            )
        status = 200 if self.settings.format == "lineprotocol" else 202
        if _prefers_no_body(headers.get("prefer", "")):
            return HttpResponse(status, b"", [])
        answer = {**self._counts(delivery), "ids": ids, **extra}
        return HttpResponse(status, orjson.dumps(answer), [("content-type", "application/json")])

    def _counts(self, delivery: Delivery) -> dict[str, Any]:
        # Enqueue acks come before the commit: the events are queued, duplicates not known yet.
        if self.settings.ack == "enqueue":
            return {"accepted": len(delivery.events), "queued": True}
        return {
            "accepted": delivery.stored + delivery.duplicates,
            "duplicates": delivery.duplicates,
        }

    async def _body(self, request: HttpRequest, task: asyncio.Task[Any]) -> bytes:
        limit = self.http.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        timeout = self.http.request_timeout_s
        body = b""
        try:
            # A sender that never finishes its body must not hold the request forever.
            with self._request_timeouts.start(task) as timed:
                body = await request.read_body(limit)
        except BodyTooLarge:
            raise _too_large(limit) from None
        if timed.expired:
            raise Problem(
                408,
                "Request timeout",
                f"the body did not arrive within {timeout:g}s (http.request_timeout_s)",
                headers=[("connection", "close")],
            )
        return body

    def _decompressed(self, request: HttpRequest, body: bytes) -> bytes:
        limit = self.http.max_body_bytes
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "x-gzip"):
            raise Problem(
                415,
                "Unsupported content encoding",
                f"Content-Encoding {encoding!r} is not supported; use gzip or none",
            )
        return _gunzip(body, limit * GZIP_EXPANSION)

    def _decode_events(
        self, request: HttpRequest, body: bytes, origin: Origin
    ) -> tuple[list[Event], list[RejectedEvent]]:
        headers = request.headers
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        metadata: dict[str, Any] = {"content_type": media} if media else {}
        if self.settings.headers:
            kept = {h: headers[h.lower()] for h in self.settings.headers if h.lower() in headers}
            if kept:
                metadata["headers"] = kept
        events: list[Event] = []
        rejected: list[RejectedEvent] = []
        if body.startswith(BOM):  # RFC 8259 lets a parser ignore one; Windows tools write it
            body = body[len(BOM) :]

        def add(
            doc: Any,
            raw: bytes | None,
            location: str | None,
            meta: dict[str, Any],
            data_raw: bytes | None = None,
        ) -> None:
            try:
                events.append(normalise(doc, raw, origin, meta, data_raw=data_raw))
            except Invalid as exc:
                raw_bytes = raw if raw is not None else orjson.dumps(doc)
                rejected.append(origin.reject(str(exc), raw_bytes, location, meta))

        # Binary mode (attributes in ce-* headers) unless the content type says structured or
        # batch: the HTTP binding decides by Content-Type first.
        if headers.get("ce-specversion") and not media.startswith("application/cloudevents"):
            event = binary_cdevent(headers, body, origin, metadata, percent_encoded=True)
            if event is not None:
                return [event], rejected
            try:
                doc, text = binary_cloudevent(headers, body, percent_encoded=True)
            except Invalid as exc:
                raise Problem(400, "Invalid CloudEvent", str(exc)) from None
            add(doc, text, None, metadata, body)  # the data as sent, a CDEvent's as its payload
            return events, rejected
        if media == FORM:  # GitHub (and Gitea) send the webhook's JSON as the form field payload
            body, media = _form_payload(body), "application/json"
        if media == "application/cloudevents+json":
            doc = _loads(body, "the CloudEvent")
            if not isinstance(doc, dict):
                raise Problem(400, "Invalid CloudEvent", "structured mode needs a JSON object")
            if "specversion" not in doc and not isinstance(doc.get("context"), dict):
                # Not read as plain JSON: the sender said it is a CloudEvent.
                reason = 'specversion: missing; a structured CloudEvent needs "specversion": "1.0"'
                rejected.append(origin.reject(reason, body, None, metadata))
            else:
                add(doc, body, None, metadata)
        elif media == "application/cloudevents-batch+json" or media in JSON_TYPES:
            batch = media == "application/cloudevents-batch+json"
            if batch and body.lstrip()[:1] != b"[":
                _loads(body, "the body")  # the JSON error, if that is what is wrong
                raise Problem(400, "Invalid CloudEvents batch", "batch mode needs a JSON array")
            try:
                return events_from_json(body, origin, metadata, label="event")
            except InvalidJson as exc:
                detail = f"the body is not valid JSON: {exc.detail}"
                raise Problem(400, "Invalid JSON", detail) from None
        elif media in NDJSON_TYPES:
            events_from_lines(body.split(b"\n"), 1, origin, metadata, events, rejected)
        else:
            raise Problem(
                415,
                "Unsupported media type",
                f"Content-Type {media or '(none)'!r} is not supported; send application/json, "
                "application/cloudevents+json, application/cloudevents-batch+json, "
                "application/x-ndjson, a form with the JSON in the field payload, or a "
                "binary-mode CloudEvent (ce-* headers)",
            )
        return events, rejected

    def _decode_lines(
        self, request: HttpRequest, body: bytes, origin: Origin
    ) -> tuple[list[Event], list[RejectedEvent], dict[str, Any]]:
        # Any content type: ClusterCockpit's senders and curl's default don't say text/plain.
        precision = request.query.get("precision")
        if precision is not None and precision not in ("s", "ms", "us", "µs", "ns"):
            raise Problem(400, "Invalid precision", f"precision={precision!r}: use s, ms, us or ns")
        cluster = request.query.get("cluster") or self.settings.cluster
        decoded = ccmessage.decode(body, origin, cluster=cluster, precision=precision)
        return decoded.events, decoded.rejected, {"metrics_skipped": decoded.metrics_skipped}

    async def _deliver(self, intake: Intake, delivery: Delivery, task: asyncio.Task[Any]) -> None:
        try:
            # Room in the queue: no wait, so no timeout to arm.
            if not intake.offer(delivery):
                with self._queue_timeouts.start(task) as waited:
                    await intake.enqueue(delivery)
                if waited.expired:
                    raise _unavailable("the queue is full")
        except PipelineClosed:
            raise _unavailable("collector is shutting down") from None
        if self.settings.ack == "enqueue":
            return
        with self._request_timeouts.start(task) as timed:
            await delivery.done.wait()
        if timed.expired:
            raise _unavailable(
                f"not committed within {self.http.request_timeout_s:g}s (is the database "
                "down?); the events may still be stored — resending is safe, duplicates are "
                "recognised"
            )
        if delivery.error is not None:
            log.error("delivery_failed", source=self.name, error=str(delivery.error))
            raise _unavailable("the events could not be committed; resending is safe")


def _prefers_no_body(prefer: str) -> bool:
    """Whether RFC 7240 preferences ask for an answer without a body: Knative's brokers and
    channels send `Prefer: reply` and count a body that is not a CloudEvent as a failed
    delivery (then retried and dead-lettered); `return=minimal` asks for none either."""
    for preference in prefer.lower().split(","):
        name, _, value = preference.split(";")[0].partition("=")
        name, value = name.strip(), value.strip().strip('"')
        if name == "reply" or (name == "return" and value == "minimal"):
            return True
    return False


def _loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400, "Invalid JSON", f"{what} is not valid JSON: {_json_error(exc)}"
        ) from None


def _form_payload(body: bytes) -> bytes:
    """The JSON of a form-encoded webhook: its field `payload` (GitHub's and Gitea's form)."""
    fields = parse_qs(body, keep_blank_values=True)
    payload = fields.get(b"payload", [])
    if len(payload) != 1:
        raise Problem(
            400,
            "Invalid form body",
            f"a form body ({FORM}) must carry the JSON in one field payload, as GitHub sends "
            f"it; this one has {len(payload) or 'no'} such field"
            + ("s" if len(payload) > 1 else "")
            + " (or send the JSON itself as application/json)",
        )
    return payload[0]


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return str(exc)


def _gunzip(body: bytes, limit: int) -> bytes:
    # A gzip body may hold several members (concatenated .gz files): read them all, or the
    # events of the later ones would be acknowledged and lost.
    members: list[bytes] = []
    size = 0
    rest = body
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data = decompressor.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise Problem(400, "Invalid gzip body", f"the body is not valid gzip: {exc}") from None
        size += len(data)
        if size > limit or decompressor.unconsumed_tail:
            raise Problem(
                413, "Body too large", f"the body expands beyond {limit} bytes when decompressed"
            )
        if not decompressor.eof:
            raise Problem(400, "Invalid gzip body", "the gzip body is truncated")
        members.append(data)
        rest = decompressor.unused_data.lstrip(b"\x00")  # zero padding, as gzip allows
        if not rest:
            return b"".join(members)


def _too_large(limit: int) -> Problem:
    return Problem(
        413, "Body too large", f"the body is larger than {limit} bytes (http.max_body_bytes)"
    )


def _unavailable(detail: str) -> Problem:
    return Problem(503, "Service unavailable", detail, headers=[("retry-after", "1")])


def _auth_problem(exc: AuthError) -> Problem:
    headers = [("www-authenticate", 'Bearer realm="collector"')] if exc.status == 401 else []
    title = "Unauthorized" if exc.status == 401 else "Forbidden"
    return Problem(exc.status, title, exc.detail, headers=headers)
