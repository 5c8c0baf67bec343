"""`collector send`: post events to a collector (or any CloudEvents endpoint) from the shell.

The body is sent as given; only its content type is chosen (detected or forced), then it is
optionally gzipped and HMAC-signed over the exact bytes sent. The answer is the server's body
on 2xx, else a `SendFailed` carrying the problem detail (RFC 9457) — one message for the user.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import hmac
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import orjson

from collector import __version__
from collector.errors import CollectorError
from collector.settings import mask_url

if TYPE_CHECKING:
    import httpx

BodyFormat = Literal["json", "ndjson", "cloudevent", "batch", "lineprotocol"]
FormatChoice = Literal["auto", "json", "ndjson", "cloudevent", "batch", "lineprotocol"]
FORMATS: Final = get_args(FormatChoice)
HmacEncoding = Literal["hex", "base64"]

DEFAULT_URL: Final = "http://127.0.0.1:8080/webhook/webhook"
ENV: Final = "COLLECTOR_SEND_"  # COLLECTOR_SEND_URL, COLLECTOR_SEND_TOKEN, …
CONTENT_TYPES: Final[dict[BodyFormat, str]] = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "cloudevent": "application/cloudevents+json",
    "batch": "application/cloudevents-batch+json",
    "lineprotocol": "text/plain; charset=utf-8",
}
MAX_ERRORS_SHOWN: Final = 20
MAX_TEXT_SHOWN: Final = 300


class SendFailed(CollectorError):
    """The events were not accepted: bad input or options, no connection, or a non-2xx answer."""


@dataclass(frozen=True, slots=True)
class Hmac:
    secret: str = field(repr=False)
    header: str = "X-Hub-Signature-256"
    prefix: str = "sha256="
    encoding: HmacEncoding = "hex"


@dataclass(frozen=True, slots=True)
class SendOptions:
    url: str = DEFAULT_URL
    format: FormatChoice = "auto"
    headers: tuple[tuple[str, str], ...] = ()
    token: str | None = field(default=None, repr=False)
    hmac: Hmac | None = None
    gzip: bool = False
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str


def read_data(spec: str) -> bytes:
    """`--data`: inline text, `@file`, or `@-` for standard input."""
    if spec == "@-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SendFailed(f"send: --data @{path}: cannot read: {exc.strerror}") from None
    return spec.encode()


def read_secret(path: Path, option: str) -> str:
    try:
        secret = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SendFailed(f"send: {option} {str(path)!r}: cannot read: {exc.strerror}") from None
    if not secret:
        raise SendFailed(f"send: {option} {str(path)!r} is empty")
    return secret


def credential(
    value: str | None, file: Path | None, option: str, environ: Mapping[str, str]
) -> str | None:
    """A secret from `--<option>` or `--<option>-file`, else from COLLECTOR_SEND_<OPTION>
    or COLLECTOR_SEND_<OPTION>_FILE; the command line wins over the environment."""
    env = ENV + option.upper().replace("-", "_")
    candidates = [
        (value, file, f"--{option}", f"--{option}-file"),
        (environ.get(env) or None, _path(environ.get(f"{env}_FILE")), env, f"{env}_FILE"),
    ]
    for given, given_file, name, file_name in candidates:
        if given and given_file:
            raise SendFailed(f"send: give either {name} or {file_name}, not both")
        if given:
            return given
        if given_file:
            return read_secret(given_file, file_name)
    return None


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def parse_header(text: str) -> tuple[str, str]:
    """`-H 'Name: value'`, as curl takes it."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c.isspace() for c in name):
        raise SendFailed(f"send: -H {text!r}: expected 'Name: value'")
    if not value.isascii():
        # HTTP/1.1 header values are bytes; the CloudEvents binding percent-encodes the rest.
        raise SendFailed(f"send: -H {name}: the value must be ASCII (percent-encode the rest)")
    return name, value.strip()


def detect_format(data: bytes) -> BodyFormat:
    """The body's format: JSON (a structured CloudEvent when it has `specversion`), NDJSON,
    or else InfluxDB line protocol.

    Data that starts like JSON but does not parse stays JSON (or NDJSON when it has several
    lines), so that the server names the broken event or line rather than this guess.
    """
    text = data.strip().removeprefix(b"\xef\xbb\xbf")  # a byte-order mark, as Windows writes
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        if text[:1] not in (b"{", b"["):
            return "lineprotocol"
        lines = [line for line in text.splitlines() if line.strip()]
        return "ndjson" if len(lines) > 1 else "json"
    if isinstance(doc, dict) and "specversion" in doc:
        return "cloudevent"
    return "json"


def signature(body: bytes, secret: str, encoding: HmacEncoding) -> str:
    """HMAC-SHA256 of the bytes sent, as `collector.auth.HmacAuth` and GitHub verify it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Prepared:
    body: bytes
    headers: list[tuple[str, str]]
    format: BodyFormat


def prepare(data: bytes, options: SendOptions) -> Prepared:
    """The exact bytes and headers to send: content type, encoding, credentials."""
    if not data.strip():
        raise SendFailed("send: nothing to send: --data is empty")
    body_format = detect_format(data) if options.format == "auto" else options.format
    headers = [
        ("User-Agent", f"collector/{__version__}"),
        ("Content-Type", CONTENT_TYPES[body_format]),
        ("Accept", "application/json, application/problem+json"),
    ]
    body = data
    if options.gzip:
        body = gzip.compress(data, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    if options.token:
        if not options.token.isascii() or any(c.isspace() for c in options.token):
            raise SendFailed("send: the token must be ASCII without spaces")
        headers.append(("Authorization", f"Bearer {options.token}"))
    if options.hmac:
        sig = signature(body, options.hmac.secret, options.hmac.encoding)
        headers.append((options.hmac.header, options.hmac.prefix + sig))
    # Headers given with -H win, as with curl: they may set the content type or ce-* attributes.
    given = {name.lower() for name, _ in options.headers}
    headers = [(n, v) for n, v in headers if n.lower() not in given] + list(options.headers)
    return Prepared(body, headers, body_format)


def post(
    prepared: Prepared, options: SendOptions, transport: httpx.BaseTransport | None = None
) -> Answer:
    """POST the prepared body; translate httpx errors into one SendFailed naming the URL.

    `transport` is for tests (httpx.MockTransport); the default is the network.
    """
    import httpx  # here: `collector --help` need not wait for it

    where = mask_url(options.url)
    try:
        with httpx.Client(timeout=options.timeout_s, transport=transport) as client:
            response = client.post(
                options.url, content=prepared.body, headers=httpx.Headers(prepared.headers)
            )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise SendFailed(f"send: invalid URL {where!r}: {exc}") from None
    except httpx.TimeoutException:
        raise SendFailed(
            f"send: {where}: no answer within {options.timeout_s:g}s (--timeout); "
            "resending is safe for a collector, which recognises duplicates"
        ) from None
    except httpx.ConnectError as exc:
        raise SendFailed(f"send: cannot connect to {where}: {_reason(exc)}") from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"send: request to {where} failed: {_reason(exc)}") from None
    answer = Answer(response.status_code, response.text)
    if not 200 <= answer.status < 300:
        raise SendFailed(describe_failure(answer, where, response.headers.get("retry-after")))
    return answer


def send(data: bytes, options: SendOptions) -> Answer:
    return post(prepare(data, options), options)


def describe_failure(answer: Answer, where: str, retry_after: str | None = None) -> str:
    """One message: status, title and detail of a problem+json answer, one line per error."""
    doc: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        doc = orjson.loads(answer.text) if answer.text else None
    head = f"send: {where} answered HTTP {answer.status}"
    if not isinstance(doc, dict):
        text = " ".join(answer.text.split())
        if len(text) > MAX_TEXT_SHOWN:
            text = text[:MAX_TEXT_SHOWN] + "…"
        return f"{head}: {text}" if text else head
    title = doc.get("title")
    detail = doc.get("detail")
    message = head + (f" {title}" if isinstance(title, str) and title else "")
    if isinstance(detail, str) and detail:
        message += f": {detail}"
    if retry_after:
        message += f" (retry after {retry_after}s)"
    errors = doc.get("errors")
    if isinstance(errors, list):
        for error in errors[:MAX_ERRORS_SHOWN]:
            message += "\n  " + _error_line(error)
        if len(errors) > MAX_ERRORS_SHOWN:
            message += f"\n  … and {len(errors) - MAX_ERRORS_SHOWN} more"
    accepted = doc.get("accepted")
    if isinstance(accepted, int) and accepted > 0:  # a partial success: the valid ones stored
        duplicates = doc.get("duplicates")
        message += f"\naccepted: {accepted}" + (
            f" (duplicates: {duplicates})" if isinstance(duplicates, int) else ""
        )
    return message


def _error_line(error: Any) -> str:
    if isinstance(error, dict):
        location, detail = error.get("location"), error.get("detail")
        if location and detail:
            return f"{location}: {detail}"
        if detail:
            return str(detail)
    return orjson.dumps(error).decode()


def _reason(exc: httpx.HTTPError) -> str:
    # httpx wraps the OS error; its innermost message ("Connection refused") says the most.
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or str(exc) or type(exc).__name__
