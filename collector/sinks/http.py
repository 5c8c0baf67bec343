"""The http sink: events forwarded as CloudEvents (structured, binary or batch mode), signed
with HMAC when configured, retried with exponential backoff on 5xx, 429 and network errors."""

from __future__ import annotations

import hashlib
import hmac

import anyio
import httpx
import orjson
import structlog

from collector.events import Event, to_cloudevent
from collector.ports import Batch, BatchResult
from collector.settings import HttpSinkSettings

log = structlog.get_logger("collector.sinks.http")


class HttpSinkError(Exception):
    pass


class HttpSink:
    def __init__(self, name: str, settings: HttpSinkSettings) -> None:
        self.name = name
        self.settings = settings
        self.buffer = settings.buffer
        self.healthy = True
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.settings.timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def write(self, batch: Batch) -> BatchResult:
        if self.settings.mode == "batch":
            if batch.events:
                body = orjson.dumps([to_cloudevent(e) for e in batch.events])
                await self._post(body, {"content-type": "application/cloudevents-batch+json"})
        else:
            for event in batch.events:
                body, headers = self._request(event)
                await self._post(body, headers)
        return BatchResult(stored=len(batch.events), duplicates=frozenset(), rejected=0)

    def _request(self, event: Event) -> tuple[bytes, dict[str, str]]:
        document = to_cloudevent(event)
        if self.settings.mode == "structured":
            return orjson.dumps(document), {"content-type": "application/cloudevents+json"}
        data = document.pop("data", None)
        content_type = document.pop("datacontenttype", "application/json")
        headers = {f"ce-{k}": str(v) for k, v in document.items()}
        headers["content-type"] = content_type
        return (orjson.dumps(data) if data is not None else b""), headers

    async def _post(self, body: bytes, headers: dict[str, str]) -> None:
        assert self._client is not None, "open() first"
        s = self.settings
        headers = {**s.headers, **headers}
        if s.hmac_secret is not None:
            digest = hmac.new(s.hmac_secret.get_secret_value().encode(), body, hashlib.sha256)
            headers[s.hmac_header] = s.hmac_prefix + digest.hexdigest()
        delay = s.backoff_s
        for attempt in range(s.retries + 1):
            problem: str
            try:
                response = await self._client.post(s.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self.healthy = True
                    return
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    raise HttpSinkError(f"http sink {self.name}: {s.url} refused: {problem}")
            self.healthy = False
            if attempt == s.retries:
                raise HttpSinkError(
                    f"http sink {self.name}: {s.url} failed {s.retries + 1} times: {problem}"
                )
            log.warning(
                "http_sink_retry",
                sink=self.name,
                attempt=attempt + 1,
                retry_in_s=delay,
                error=problem,
            )
            await anyio.sleep(delay)
            delay *= 2
