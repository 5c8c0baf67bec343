"""The one internal event model and the rules that turn decoded JSON into it.

A document becomes an `Event` (CDEvents, CloudEvents structured JSON or plain JSON) or a
`RejectedEvent` whose reason names the offending field. Identity is (source, type, id).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import unquote

import msgspec
import orjson

from collector import cdevents

Family = Literal["cdevents", "cloudevents", "ccmessage", "cclog", "raw"]

MAX_KEY_BYTES = 512  # id, source, type: together they must fit one btree index entry
MAX_RAW_BYTES = 64 * 1024  # rejected input is stored up to this size
# \u0000 preceded by an even number of backslashes: an escaped NUL, which jsonb refuses
# (an odd number means a literal backslash followed by the text "u0000", which is fine).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


@dataclass(slots=True)
class Event:
    id: str
    source: str
    type: str
    time: datetime
    family: Family
    payload: bytes  # the original document: JSON text, UTF-8 (sent to PostgreSQL as is)
    received_at: datetime
    received_via: str
    subject: str | None = None
    subject_type: str | None = None
    predicate: str | None = None
    type_version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RejectedEvent:
    reason: str
    raw: bytes
    received_at: datetime
    received_via: str
    location: str | None = None  # "line 3", "index 2": where in the delivery
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_text(self) -> str:
        text = self.raw[:MAX_RAW_BYTES].decode("utf-8", errors="backslashreplace")
        return text.replace("\x00", "\\x00")

    @property
    def message(self) -> str:
        return f"{self.location}: {self.reason}" if self.location else self.reason


class Origin(NamedTuple):
    """Where documents came from, and what plain JSON without attributes gets. (Immutable; a
    NamedTuple, as an HTTP source makes one per request: a frozen dataclass costs 5x more.)"""

    received_via: str
    received_at: datetime
    default_type: str | None = None
    default_source: str | None = None
    default_id: str | None = None  # plain JSON: an id from transport metadata (a header)
    no_type: str | None = None  # plain JSON without default_type: why, when the source knows

    def reject(
        self, reason: str, raw: bytes, location: str | None, metadata: dict[str, Any]
    ) -> RejectedEvent:
        return RejectedEvent(reason, raw, self.received_at, self.received_via, location, metadata)


class Invalid(ValueError):
    """A document that cannot become an event; str() names the field and the fix."""


def normalise(
    doc: Any,
    raw: bytes | None,
    origin: Origin,
    metadata: dict[str, Any],
    *,
    data_raw: bytes | None = None,
) -> Event:
    """Turn one decoded JSON document into an Event, or raise Invalid naming the field.

    `raw` is the document as received, `data_raw` its `data` as received (a binary-mode
    CloudEvent's body); either becomes the stored payload as is, instead of re-encoding.
    """
    if not isinstance(doc, dict):
        raise Invalid(f"an event must be a JSON object, not {_json_kind(doc)}")
    if isinstance(doc.get("context"), dict):
        return _cdevent(doc, raw, origin, metadata)
    if "specversion" in doc:
        return _cloudevent(doc, raw, origin, metadata, data_raw)
    if "context" in doc:
        raise Invalid("context: must be an object (a CDEvent's context)")
    if doc.keys() == _GO_MICRO_FIELDS:
        return _go_micro(doc, origin, metadata)
    return _plain(doc, raw, origin, metadata)


# An identity key the common way: a string of 1 to MAX_KEY_BYTES // 4 characters, which
# always fits MAX_KEY_BYTES; msgspec checks it in C. Anything else goes the slow way.
_ShortKey = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_BYTES // 4)]


class _Context(msgspec.Struct, gc=False):  # decoded JSON holds no cycles
    id: _ShortKey
    source: _ShortKey
    type: _ShortKey
    timestamp: str


class _Subject(msgspec.Struct, gc=False):
    id: _ShortKey


class _CDEventHead(msgspec.Struct, gc=False):
    """The fields of a CDEvent that the collector reads; the rest is checked, not built."""

    context: _Context
    subject: _Subject


_read_head = msgspec.json.Decoder(_CDEventHead).decode
# RFC 3339's date-time (section 5.6), which CloudEvents and CDEvents require. fromisoformat alone
# also takes ISO 8601's other forms (20230320T142705Z, week dates, minutes only, a space for
# the T), which a receiver of a forwarded event (any Go SDK) refuses.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp with upper-case T and Z; ValueError for anything else."""
    if _RFC3339.fullmatch(value) is None:
        raise ValueError(value)
    return datetime.fromisoformat(value)


def cdevent_from_json(raw: bytes, origin: Origin, metadata: dict[str, Any]) -> Event | None:
    """The CDEvent in one JSON text, or None: then `normalise(orjson.loads(raw), raw, ...)`
    decides (an event of another kind, or a rejection naming the field).

    Building every dict and string of a ~1 KB document took most of the CPU per event;
    msgspec checks the JSON but builds only the fields read here. It accepts what orjson
    accepts, but for numbers beyond a double's range (1e400), which jsonb stores exactly.
    Whatever the checks of `_cdevent` would look at twice goes the slow way, so both ways
    make the same Event.
    """
    try:
        head = _read_head(raw)
        if not raw.isascii():
            raw.decode()  # msgspec does not check the UTF-8 of what it skips; orjson does
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return None
    # The escape \u0000 is the only way a NUL gets into a JSON string: the slow way judges.
    # (A backslash is rare in a payload: one memchr answers the common case.)
    if raw.find(b"\\") >= 0 and raw.find(b"\\u0000") >= 0:
        return None
    context = head.context
    event_type = context.type
    try:
        subject_type, predicate, version = cdevents.parse_type(event_type)
        time = _parse_time(context.timestamp)  # lower-case "t" or "z" fail here: slow way
    except (cdevents.UnknownType, ValueError):
        return None
    if time.tzinfo is None:  # no offset: the slow way says so
        return None
    return Event(
        context.id,
        context.source,
        event_type,
        time,
        "cdevents",
        raw,
        origin.received_at,
        origin.received_via,
        head.subject.id,
        subject_type,
        predicate,
        version,
        metadata,
    )


class InvalidJson(Invalid):
    """A text that is not JSON at all; `detail` says where and why."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid JSON: {detail}")
        self.detail = detail


_read_array = msgspec.json.Decoder(list[msgspec.Raw]).decode
BOM = b"\xef\xbb\xbf"


def event_from_json(raw: bytes, origin: Origin, metadata: dict[str, Any]) -> Event:
    """The event in one JSON text, stored as sent; raises Invalid naming the field, or
    InvalidJson."""
    event = cdevent_from_json(raw, origin, metadata)
    if event is not None:
        return event
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(str(exc)) from None
    return normalise(doc, raw, origin, metadata)


def events_from_json(
    data: bytes, origin: Origin, metadata: dict[str, Any], *, label: str = "index"
) -> tuple[list[Event], list[RejectedEvent]]:
    """The events of a JSON text holding one event or an array of them, each stored exactly as
    sent (a number is never re-encoded through a double), and the rejections, each at
    f"{label} {index}". Raises InvalidJson when the text is not JSON. A leading byte-order mark
    is ignored, as RFC 8259 allows."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    events: list[Event] = []
    rejected: list[RejectedEvent] = []
    items = json_array_items(data)
    if items is None:
        try:
            events.append(event_from_json(data, origin, metadata))
        except InvalidJson:
            raise
        except Invalid as exc:
            rejected.append(origin.reject(str(exc), data, None, metadata))
        return events, rejected
    origin = _one_event_per_id(origin, len(items))
    for index, item in enumerate(items):
        meta = {**metadata, "index": index}
        try:
            events.append(event_from_json(item, origin, meta))
        except Invalid as exc:
            rejected.append(origin.reject(str(exc), item, f"{label} {index}", meta))
    return events, rejected


def events_from_lines(
    lines: list[bytes],
    first: int,
    origin: Origin,
    metadata: dict[str, Any],
    events: list[Event],
    rejected: list[RejectedEvent],
) -> None:
    """JSON lines (NDJSON), numbered from `first`, into events and rejections at
    f"line {number}"; blank lines are skipped."""
    if origin.default_id is not None:
        origin = _one_event_per_id(origin, sum(1 for line in lines if line.strip()))
    for number, line in enumerate(lines, start=first):
        line = line.strip()
        if not line:
            continue
        meta = {**metadata, "line": number}
        try:
            events.append(event_from_json(line, origin, meta))
        except Invalid as exc:
            rejected.append(origin.reject(str(exc), line, f"line {number}", meta))


def _one_event_per_id(origin: Origin, events: int) -> Origin:
    """An id from a header names one event. Given to each of several, it would store the first
    and count the others as its replays: they get their content hash instead."""
    return origin._replace(default_id=None) if events > 1 else origin


def json_array_items(data: bytes) -> list[bytes] | None:
    """The items of a JSON array, each as sent, or None when `data` is not a well-formed array
    (orjson.loads then says what it is, or what is wrong with it)."""
    if data[:1] != b"[" and data.lstrip()[:1] != b"[":
        return None
    try:
        return [bytes(item) for item in _read_array(data)]
    except (msgspec.MsgspecError, RecursionError):
        return None


def _cdevent(
    doc: dict[str, Any], raw: bytes | None, origin: Origin, metadata: dict[str, Any]
) -> Event:
    context: dict[str, Any] = doc["context"]
    event_id = _key(context, "id", "context.id")
    source = _key(context, "source", "context.source")
    event_type = _key(context, "type", "context.type")
    try:
        subject_type, predicate, version = cdevents.parse_type(event_type)
    except cdevents.UnknownType as exc:
        raise Invalid(f"context.type {event_type!r} {exc}") from None
    time = _time(context.get("timestamp"), "context.timestamp", required=True)
    assert time is not None
    subject = doc.get("subject")
    if not isinstance(subject, dict):
        raise Invalid("subject: missing or not an object")
    subject_id = _key(subject, "id", "subject.id")
    return Event(
        id=event_id,
        source=source,
        type=event_type,
        time=time,
        family="cdevents",
        payload=_payload(doc, raw),
        received_at=origin.received_at,
        received_via=origin.received_via,
        subject=subject_id,
        subject_type=subject_type,
        predicate=predicate,
        type_version=version,
        metadata=metadata,
    )


def _cloudevent(
    doc: dict[str, Any],
    raw: bytes | None,
    origin: Origin,
    metadata: dict[str, Any],
    data_raw: bytes | None = None,
) -> Event:
    if doc.get("specversion") != "1.0":
        raise Invalid(f"specversion: {doc.get('specversion')!r} is not supported (use '1.0')")
    event_id = _key(doc, "id", "id")
    source = _key(doc, "source", "source")
    event_type = _key(doc, "type", "type")
    data = doc.get("data")
    if event_type.startswith("dev.cdevents") and isinstance(data, dict) and "context" in data:
        # A CDEvent carried as CloudEvent data (the CDEvents CloudEvents binding).
        if not isinstance(data["context"], dict):
            raise Invalid("data.context: must be an object (a CDEvent's context)")
        attributes = {k: v for k, v in doc.items() if k != "data"}
        event = _cdevent(data, data_raw, origin, {**metadata, "cloudevent": attributes})
        if _escapes_nul(attributes):  # kept in metadata, a jsonb column
            raise Invalid("attributes: contain \\u0000, which PostgreSQL jsonb cannot store")
        return event
    if "data_base64" in doc:
        _check_base64(doc)
    subject = doc.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise Invalid("subject: must be a string")
    subject = _checked_text(subject, "subject")  # before the payload check, to name the field
    time = _time(doc.get("time"), "time", required=False) or origin.received_at
    return Event(
        id=event_id,
        source=source,
        type=event_type,
        time=time,
        family="cloudevents",
        payload=_payload(doc, raw),
        received_at=origin.received_at,
        received_via=origin.received_via,
        subject=subject,
        metadata=metadata,
    )


def _check_base64(doc: dict[str, Any]) -> None:
    if "data" in doc:
        raise Invalid("data_base64: a CloudEvent carries data or data_base64, not both")
    encoded = doc["data_base64"]
    try:
        if not isinstance(encoded, str):
            raise ValueError
        base64.b64decode(encoded, validate=True)
    except ValueError:
        raise Invalid("data_base64: not a base64 string") from None


def _plain(
    doc: dict[str, Any], raw: bytes | None, origin: Origin, metadata: dict[str, Any]
) -> Event:
    if origin.default_type is None:
        raise Invalid(
            origin.no_type
            or "type: plain JSON carries no event type; set event_type on source "
            f"{origin.received_via!r}, or send a CloudEvent or CDEvent"
        )
    event_id = origin.default_id
    if event_id is None:
        event_id = hashlib.sha256(_canonical(doc, raw)).hexdigest()
    else:  # from a header: checked as an id in the document would be
        event_id = _key({"id": event_id}, "id", "id (from the id header)")
    return Event(
        id=event_id,
        source=origin.default_source or f"collector/{origin.received_via}",
        type=origin.default_type,
        time=origin.received_at,
        family="raw",
        payload=_payload(doc, raw),
        received_at=origin.received_at,
        received_via=origin.received_via,
        metadata=metadata,
    )


# go-micro's events.Event as Go's encoding/json writes it: every field, no tags. oCIS (reva's
# events.Publish) sends its events so, the event's JSON in Payload, its type and id in Metadata.
_GO_MICRO_FIELDS = {"ID", "Topic", "Timestamp", "Metadata", "Payload"}


def _go_micro(doc: dict[str, Any], origin: Origin, metadata: dict[str, Any]) -> Event:
    """A go-micro event: the event in its Payload, stored as sent; the envelope in metadata."""
    attributes = doc["Metadata"] if doc["Metadata"] is not None else {}
    if not isinstance(attributes, dict):
        raise Invalid("Metadata: must be an object")
    event_type = (
        _key(attributes, "eventtype", "Metadata.eventtype")
        if "eventtype" in attributes
        else origin.default_type
    )
    if event_type is None:
        raise Invalid(
            "Metadata.eventtype: missing: a go-micro event without one needs event_type on "
            f"source {origin.received_via!r}"
        )
    if "eventid" in attributes:
        event_id = _key(attributes, "eventid", "Metadata.eventid")
    else:
        event_id = origin.default_id or _key(doc, "ID", "ID")
    try:
        payload = base64.b64decode(doc["Payload"], validate=True)
    except (TypeError, ValueError):
        raise Invalid("Payload: not base64 (go-micro encodes the event's bytes so)") from None
    try:
        inner = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"Payload: not JSON: {exc}") from None
    envelope = {k: v for k, v in doc.items() if k != "Payload"}
    if _escapes_nul(envelope):  # kept in metadata, a jsonb column
        raise Invalid("Metadata: contains \\u0000, which PostgreSQL jsonb cannot store")
    return Event(
        id=event_id,
        source=origin.default_source or f"collector/{origin.received_via}",
        type=event_type,
        time=_time(doc["Timestamp"], "Timestamp", required=False) or origin.received_at,
        family="raw",
        payload=_payload(inner, payload),
        received_at=origin.received_at,
        received_via=origin.received_via,
        metadata={**metadata, "gomicro": envelope},
    )


_LONG_NUMBER = re.compile(rb"[0-9]{20}")


def _canonical(doc: Any, raw: bytes | None) -> bytes:
    """The document's canonical JSON (sorted keys, no spaces), which its content hash id is of.

    orjson reads an integer beyond 64 bits as a double, so two documents differing only in
    such a number would get one id: those (20 digits or more in the text) are read again by
    msgspec, which keeps them exact. Everything else is hashed as it always was.
    """
    if raw is not None and _LONG_NUMBER.search(raw):
        exact = msgspec.json.decode(raw)
        try:
            return orjson.dumps(exact, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits
            return msgspec.json.encode(exact, order="sorted")
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _key(obj: dict[str, Any], key: str, name: str) -> str:
    value = obj.get(key)
    # The common case in one test: a short string without NUL (at most 4 bytes per character).
    if type(value) is str and 0 < len(value) <= MAX_KEY_BYTES // 4 and "\x00" not in value:
        return value
    if value is None:
        raise Invalid(f"{name}: missing")
    if not isinstance(value, str) or not value:
        raise Invalid(f"{name}: must be a non-empty string")
    if len(value) > MAX_KEY_BYTES // 4 and len(value.encode()) > MAX_KEY_BYTES:
        raise Invalid(f"{name}: longer than {MAX_KEY_BYTES} bytes")
    return _checked_text(value, name) or value


def _checked_text(value: str | None, name: str) -> str | None:
    if value is not None and "\x00" in value:
        raise Invalid(f"{name}: contains a NUL character, which PostgreSQL text cannot store")
    return value


def _time(value: Any, name: str, *, required: bool) -> datetime | None:
    if value is None:
        if required:
            raise Invalid(f"{name}: missing")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name}: must be an RFC 3339 timestamp string")
    shape = _RFC3339.fullmatch(value)
    if shape is not None and shape["offset"] is None:
        raise Invalid(f"{name}: {value!r} has no UTC offset (add 'Z' or '+00:00')")
    try:
        if shape is None:
            raise ValueError(value)
        # RFC 3339 allows a lower-case 't' and 'z'; fromisoformat wants upper case.
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise Invalid(
            f"{name}: {value!r} is not an RFC 3339 timestamp (like 2024-05-01T12:00:00Z)"
        ) from None


def _escapes_nul(attributes: dict[str, Any]) -> bool:
    """True if the attributes as JSON hold the text \\u0000. The common case, string values
    (binary mode's headers), is checked without encoding them."""
    for name, value in attributes.items():
        if type(value) is not str:
            return b"\\u0000" in orjson.dumps(attributes)
        # Encoded, a NUL becomes that text, and the text itself stays in it (backslash doubled).
        if "\x00" in value or "\\u0000" in value or "\x00" in name or "\\u0000" in name:
            return True
    return False


def _payload(doc: dict[str, Any], raw: bytes | None) -> bytes:
    text = raw if raw is not None else orjson.dumps(doc)
    # A backslash is rare in a payload: one memchr (find) answers the common case.
    if text.find(b"\\") >= 0 and _ESCAPED_NUL.search(text):
        raise Invalid("payload: contains \\u0000, which PostgreSQL jsonb cannot store")
    return text


def _json_kind(doc: Any) -> str:
    if isinstance(doc, list):
        return "an array"
    if isinstance(doc, str):
        return "a string"
    if doc is None:
        return "null"
    if isinstance(doc, bool):
        return "a boolean"
    return "a number"


def binary_cloudevent(
    headers: Mapping[str, str], data: bytes, *, percent_encoded: bool = False
) -> tuple[dict[str, Any], bytes | None]:
    """The structured form of a binary-mode CloudEvent, attributes from `ce-` headers, and its
    JSON text with the data exactly as sent when the data is JSON (else None).

    `headers` have lower-case names. The HTTP binding percent-encodes header values
    (`percent_encoded`); the NATS binding does not. JSON data (by content type, or with none
    when it parses) is embedded as JSON, other text as a string, bytes as data_base64.
    """
    doc, json_data = _binary_attributes(headers, percent_encoded)
    if not data:
        return doc, None
    if json_data:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            # Without a content type the data is opaque: the Python SDK sends bytes so.
            if "datacontenttype" in doc:
                raise Invalid(f"data: not valid JSON: {exc}") from None
        else:
            # The attributes' JSON with the data appended as sent: no number re-encoded.
            text = orjson.dumps(doc)[:-1] + (b',"data":' if doc else b'"data":') + data + b"}"
            doc["data"] = parsed
            return doc, text
    try:
        decoded: str | None = data.decode()
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and "\x00" not in decoded:  # jsonb cannot store a NUL: bytes, then
        doc["data"] = decoded
    else:
        doc["data_base64"] = base64.b64encode(data).decode()
    return doc, None


def binary_cdevent(
    headers: Mapping[str, str],
    data: bytes,
    origin: Origin,
    metadata: dict[str, Any],
    *,
    percent_encoded: bool = False,
) -> Event | None:
    """A binary-mode CloudEvent carrying a CDEvent, the fast way of `cdevent_from_json`, or
    None: then `normalise(*binary_cloudevent(...), data_raw=data)` decides. The same Event
    either way; what the slow way would look at twice goes the slow way."""
    if headers.get("ce-specversion") != "1.0":
        return None
    try:
        attributes, json_data = _binary_attributes(headers, percent_encoded)
        event_type = _key(attributes, "type", "type")
        _key(attributes, "id", "id")
        _key(attributes, "source", "source")
    except Invalid:
        return None
    if not json_data or not event_type.startswith("dev.cdevents") or _escapes_nul(attributes):
        return None
    return cdevent_from_json(data, origin, {**metadata, "cloudevent": attributes})


def _binary_attributes(
    headers: Mapping[str, str], percent_encoded: bool
) -> tuple[dict[str, Any], bool]:
    """A binary-mode CloudEvent's attributes, and whether its data is JSON (by content type,
    or with none). Raises Invalid for a header value that is not UTF-8."""
    attributes: dict[str, Any] = {
        name[3:]: _header_value(name, value) if percent_encoded else value
        for name, value in headers.items()
        if name.startswith("ce-")
    }
    content_type = headers.get("content-type")
    media = (content_type or "").split(";")[0].strip().lower()
    if content_type:
        attributes["datacontenttype"] = content_type
    json_data = not media or media in ("application/json", "text/json") or media.endswith("+json")
    return attributes, json_data


_QUOTED_PAIR = re.compile(r"\\(.)")


def _header_value(name: str, value: str) -> str:
    """An HTTP binding attribute value: percent-encoded UTF-8, maybe as a quoted string (older
    senders). Senders that do not encode are read as meant: HTTP headers arrive as latin-1
    text, so raw UTF-8 is decoded as such, and bytes that are not UTF-8 are the latin-1 they
    are (Python's requests and Node send "é" so, as the one byte E9)."""
    if len(value) > 1 and value[0] == value[-1] == '"':
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    if not value.isascii():
        with contextlib.suppress(UnicodeDecodeError):
            value = value.encode("latin-1").decode()
    try:
        return unquote(value, errors="strict") if "%" in value else value
    except UnicodeError:
        raise Invalid(
            f"{name}: not UTF-8 (percent-encode the UTF-8 bytes of the value, as the CloudEvents "
            "HTTP binding says)"
        ) from None


# CloudEvents attributes a wrapped event gets from itself, never from the CloudEvent it came in.
_CORE_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema"}
    | {"data", "data_base64"}
)


def to_cloudevent(event: Event) -> dict[str, Any]:
    """The event as a structured CloudEvent: CloudEvents as received, others wrapped as data
    (a CDEvent that came in a CloudEvent keeps that CloudEvent's extensions: traceparent…)."""
    if event.family == "cloudevents":
        return dict(orjson.loads(event.payload))
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time.isoformat(),
        "datacontenttype": "application/json",
    }
    if event.subject is not None:
        document["subject"] = event.subject
    carrier = event.metadata.get("cloudevent")
    if isinstance(carrier, dict):
        document.update((k, v) for k, v in carrier.items() if k not in _CORE_ATTRIBUTES)
    document["data"] = payload_fragment(event.payload)
    return document


def payload_fragment(payload: bytes) -> orjson.Fragment:
    """The stored JSON text, embeddable as is — compacted when it spans lines, so that one
    event stays one line in JSON-lines output (a pretty-printed file is kept as received)."""
    if payload.find(b"\n") >= 0 or payload.find(b"\r") >= 0:
        return orjson.Fragment(orjson.dumps(orjson.loads(payload)))
    return orjson.Fragment(payload)
