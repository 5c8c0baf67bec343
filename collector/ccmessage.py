"""ClusterCockpit messages (line protocol) as events: family `ccmessage`, logs `cclog`.

An event line (string field `event`) becomes type `org.clustercockpit.event.<name>`, a log
line (`log`) `org.clustercockpit.log.<name>` of its own family (logs are retained apart from
events); job events sent as measurement `start_job` or as
`job,function=start_job` get the same type. Metric lines (`value`) are not events: they are
counted and skipped. The id is a hash of the line's content and timestamp, so a resent line is
a duplicate, and it always has the same time: the database keeps these identities in the time
partitions themselves, which retention drops (sql/migrations/0001_events.sql). A line without a
timestamp takes its message's time (`message_time_ns`: JetStream's stream time, the same on
every redelivery) or else the receive time, and its id hashes that time and its line number.
Tags are checked where the ClusterCockpit specification is explicit (the `type` values, and a
`type-id` with every type but `node`); anything it is silent about is kept as sent.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from collector.events import Event, Invalid, Origin, RejectedEvent
from collector.lineprotocol import LineProtocolError, Point, parse_lines, timestamp_ns

TYPE_PREFIX = "org.clustercockpit"
JOB_FUNCTIONS = {"start_job", "stop_job"}
# The hardware levels a message may be about (cc-specifications, interfaces/lineprotocol).
TYPES = ("node", "socket", "die", "memoryDomain", "llc", "core", "hwthread", "accelerator")
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


@dataclass
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    metrics_skipped: int = 0
    other_skipped: int = 0  # control and query messages: requests, not stored


def decode(
    data: str | bytes,
    origin: Origin,
    *,
    cluster: str | None = None,
    precision: str | None = None,
    metadata: dict[str, Any] | None = None,
    message_time_ns: int | None = None,
) -> Decoded:
    """Parse line protocol into events; a bad line is rejected alone, naming its number.

    `message_time_ns` (ns since the epoch) is the time of lines without a timestamp, instead
    of the receive time: JetStream's stream time, which every redelivery repeats. Bytes are
    read as UTF-8 line by line: a line that is not UTF-8 is rejected alone too."""
    result = Decoded()
    text = data if isinstance(data, str) else _utf8_lines(data, origin, metadata, result)
    not_utf8 = bool(result.rejected)
    for number, line, parsed in parse_lines(text):
        raw = line.encode()
        meta = {**(metadata or {}), "line": number}
        try:
            if isinstance(parsed, LineProtocolError):
                raise parsed
            kind = parsed.kind
            if kind == "metric":
                result.metrics_skipped += 1
                continue
            if kind in ("control", "query"):
                result.other_skipped += 1
                continue
            result.events.append(
                to_event(parsed, origin, cluster, precision, meta, number, message_time_ns)
            )
        except (LineProtocolError, Invalid) as exc:
            # A reason may quote a key holding NUL, which PostgreSQL text cannot store.
            reason = str(exc).replace("\x00", "\\x00")
            result.rejected.append(origin.reject(reason, raw, f"line {number}", meta))
    if not_utf8:  # in line order
        result.rejected.sort(key=lambda r: r.metadata["line"])
    return result


def _utf8_lines(
    data: bytes, origin: Origin, metadata: dict[str, Any] | None, result: Decoded
) -> str:
    """The text of `data`; a line that is not UTF-8 is rejected into `result` and left empty,
    so that the others keep their numbers."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(line.decode())
        except UnicodeDecodeError as exc:
            lines.append("")
            meta = {**(metadata or {}), "line": number}
            reject = origin.reject(f"not UTF-8 text: {exc}", line.strip(), f"line {number}", meta)
            result.rejected.append(reject)
    return "\n".join(lines)


def check_tags(tags: dict[str, str]) -> None:
    """Reject what the specification rules out; raise Invalid naming the tag."""
    level = tags.get("type")
    if level is not None:
        if level not in TYPES:
            raise Invalid(f"tag type: {level!r} is not one of {', '.join(TYPES)}")
        if level != "node" and not tags.get("type-id"):
            raise Invalid(f"tag type-id: missing (type={level} needs the {level}'s id)")
    for name in ("cluster", "hostname"):
        value = tags.get(name)
        if value is not None and not is_name(value):
            raise Invalid(f"tag {name}: {value!r} is not a {name} (empty, or contains '/')")


def is_name(value: str) -> bool:
    """Whether `value` may be a cluster or host name: a part of /clusters/<c>/hosts/<h>."""
    return "/" not in value and bool(value.strip())


def _json_cluster(data: Any) -> str | None:
    """The `cluster` of an event's JSON, as cc-backend's job and node state events carry it
    (they have no tags), when it is a cluster name."""
    value = data.get("cluster") if isinstance(data, dict) else None
    return value if isinstance(value, str) and is_name(value) else None


def _from_ns(ns: int) -> datetime:
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest // 1000)


def to_event(
    point: Point,
    origin: Origin,
    cluster: str | None,
    precision: str | None,
    metadata: dict[str, Any],
    line: int = 1,
    message_time_ns: int | None = None,
) -> Event:
    kind = point.kind
    tags = dict(point.tags)
    check_tags(tags)
    message = point.fields[kind]
    assert isinstance(message, str)
    data: Any = None
    if kind == "event" and message[:1] in "{[":
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(message)  # job events carry the job as JSON
    cluster_name = tags.get("cluster") or cluster or _json_cluster(data)
    if not cluster_name:
        raise Invalid("tag cluster: missing (add the tag, ?cluster=<name>, or configure cluster)")
    if not is_name(cluster_name):  # the tag is checked above, the JSON's in _json_cluster
        raise Invalid(
            f"cluster {cluster_name!r} (?cluster= or the source's cluster): not a cluster name "
            "(empty, or contains '/')"
        )
    tags.setdefault("cluster", cluster_name)
    name = point.measurement
    if name == "job" and tags.get("function") in JOB_FUNCTIONS:
        name = tags["function"]
    for key, value in point.fields.items():
        # Line protocol integers are 64-bit (i signed, u unsigned); JSON output needs that too.
        if type(value) is int and not INT64_MIN <= value <= UINT64_MAX:
            raise Invalid(f"field {key}: {value} is outside the 64-bit integer range")
    ns: int | None = None
    if point.timestamp is None:
        when = origin.received_at if message_time_ns is None else _from_ns(message_time_ns)
    else:
        ns = timestamp_ns(point.timestamp, precision)
        if not INT64_MIN <= ns <= INT64_MAX:  # as InfluxDB: nanoseconds in a signed 64-bit
            raise Invalid(f"timestamp {point.timestamp}: out of range (years 1677 to 2262)")
        try:
            when = _from_ns(ns)
        except (OverflowError, OSError, ValueError):
            raise Invalid(f"timestamp {point.timestamp}: out of range") from None
    document: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "tags": tags,
        "fields": point.fields,
        "timestamp_ns": ns,
    }
    if data is not None:
        document["data"] = data
    payload = orjson.dumps(document)
    if payload.find(b"\\u0000") >= 0 or "\x00" in name:
        raise Invalid("line: contains a NUL character, which PostgreSQL cannot store")
    hashed: list[Any] = [point.measurement, sorted(point.tags.items()), point.fields]
    if ns is not None:
        hashed += [ns, cluster_name]
    else:
        # Without a timestamp the message's time stands in (the same on every redelivery of a
        # JetStream message), and the line number keeps two identical lines two events.
        hashed += [
            message_time_ns if message_time_ns is not None else when.isoformat(),
            cluster_name,
            line,
        ]
    identity = orjson.dumps(hashed)
    hostname = tags.get("hostname")
    source = f"/clusters/{cluster_name}" + (f"/hosts/{hostname}" if hostname else "")
    return Event(
        id=hashlib.sha256(identity).hexdigest(),
        source=source,
        type=f"{TYPE_PREFIX}.{kind}.{name}",
        time=when,
        family="cclog" if kind == "log" else "ccmessage",
        payload=payload,
        received_at=origin.received_at,
        received_via=origin.received_via,
        subject=hostname,
        metadata=metadata,
    )
