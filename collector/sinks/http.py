"""The http sink: events forwarded as CloudEvents (structured, binary or batch mode), signed
with HMAC when configured, retried with exponential backoff on 5xx, 429 and network errors.
An event the receiver refuses (another 4xx) is logged and counted, and the others still go."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import anyio
import httpx
import orjson
import structlog

from collector.errors import CollectorError
from collector.events import Event, to_cloudevent
from collector.ports import Batch, BatchResult
from collector.settings import HttpSinkSettings, mask_url

log = structlog.get_logger("collector.sinks.http")

MAX_RETRY_AFTER_S = 60.0
# 4xx answers about the moment or about the sink itself (credentials, URL), not the event:
# retried like 5xx, so a required sink waits for a fix instead of refusing every event.
RETRIED_4XX = frozenset({401, 403, 404, 405, 407, 408, 429})


class HttpSinkError(CollectorError):
    """The receiver refused an event (a 4xx not retried), or kept failing past the retries."""


class HttpRefused(HttpSinkError):
    """The receiver refused the request for good: sending it again would not help."""


class HttpSink:
    def __init__(self, name: str, settings: HttpSinkSettings) -> None:
        self.name = name
        self.settings = settings
        self.buffer = settings.buffer
        self.healthy = True
        self.refused = 0  # events the receiver refused (collector_sink_refused_total)
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.settings.timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def write(self, batch: Batch) -> BatchResult:
        """Send every event; one the receiver refuses is logged, counted and left out (sending
        it again would fail the same way, and hold up every later event); retries exhausted
        raise HttpSinkError, so that the batch is written again later."""
        events = batch.events
        if self.settings.mode == "batch" and events:
            try:
                await self._post(*self._batch_request(events))
                return BatchResult(stored=len(events), duplicates=frozenset(), rejected=0)
            except HttpRefused as exc:
                # One bad event refuses a whole batch: send them one by one to find it.
                log.warning(
                    "http_sink_batch_refused", sink=self.name, events=len(events), error=str(exc)
                )
        refused = 0
        for event in events:
            try:
                await self._post(*self._request(event))
            except HttpRefused as exc:
                refused += 1
                self.refused += 1
                log.error(
                    "http_sink_refused",
                    sink=self.name,
                    id=event.id,
                    source=event.source,
                    type=event.type,
                    error=str(exc),
                    refused_total=self.refused,
                )
        return BatchResult(stored=len(events) - refused, duplicates=frozenset(), rejected=0)

    @staticmethod
    def _batch_request(events: list[Event]) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps([to_cloudevent(e) for e in events])
        return body, {"content-type": "application/cloudevents-batch+json"}

    def _request(self, event: Event) -> tuple[bytes, dict[str, str]]:
        if self.settings.mode == "batch":  # a batch of one
            return self._batch_request([event])
        document = to_cloudevent(event)
        if self.settings.mode == "structured":
            return orjson.dumps(document), {"content-type": "application/cloudevents+json"}
        # Binary mode (CloudEvents HTTP binding): attributes as ce- headers (a null one is
        # absent), data as the body in its datacontenttype: JSON unless it says otherwise, bytes
        # (data_base64) octets.
        data = document.pop("data", None)
        data_base64 = document.pop("data_base64", None)
        content_type = document.pop("datacontenttype", None)
        headers = {f"ce-{k}": _header_value(v) for k, v in document.items() if v is not None}
        if data_base64 is not None:
            headers["content-type"] = content_type or "application/octet-stream"
            return base64.b64decode(data_base64), headers
        if content_type is not None:
            headers["content-type"] = content_type
        if data is None:
            return b"", headers
        content_type = headers.setdefault("content-type", "application/json")
        if isinstance(data, str) and not _is_json(content_type):
            return data.encode(), headers
        return orjson.dumps(data), headers

    async def _post(self, body: bytes, headers: dict[str, str]) -> None:
        assert self._client is not None, "open() first"
        s = self.settings
        headers = {**s.headers, **headers}
        if s.hmac_secret is not None:
            digest = hmac.new(s.hmac_secret.get_secret_value().encode(), body, hashlib.sha256)
            headers[s.hmac_header] = s.hmac_prefix + digest.hexdigest()
        delay = min(s.backoff_s, s.max_backoff_s)
        try:
            await self._post_with_retries(body, headers, delay)
        finally:
            # Unhealthy only while retrying: once a write gave up, the next one may succeed.
            self.healthy = True

    async def _post_with_retries(self, body: bytes, headers: dict[str, str], delay: float) -> None:
        assert self._client is not None, "open() first"
        s = self.settings
        for attempt in range(s.retries + 1):
            problem: str
            wait = delay
            try:
                response = await self._client.post(s.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code not in RETRIED_4XX:
                    raise HttpRefused(
                        f"http sink {self.name}: {mask_url(s.url)} refused: {problem}"
                    )
                wait = max(delay, _retry_after(response))
            self.healthy = False
            if attempt == s.retries:
                raise HttpSinkError(
                    f"http sink {self.name}: {mask_url(s.url)} failed {s.retries + 1} times: "
                    f"{problem}"
                )
            log.warning(
                "http_sink_retry",
                sink=self.name,
                attempt=attempt + 1,
                retry_in_s=wait,
                error=problem,
            )
            await anyio.sleep(wait)
            delay = min(delay * 2, s.max_backoff_s)


def _retry_after(response: httpx.Response) -> float:
    """The receiver's Retry-After in seconds (bounded), or 0."""
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_RETRY_AFTER_S) if value.isdigit() else 0.0


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def _header_value(value: object) -> str:
    """An attribute as the HTTP binding writes it: its canonical string (true, 42; JSON for what
    has none), percent-encoded where the binding says it must be: space, '"', '%' and all
    that is not printable ASCII."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return quote(text, safe="!#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
