"""ccmessage.decode: ClusterCockpit lines into events, logs in a family of their own."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from collector import ccmessage
from collector.events import Origin

ORIGIN = Origin("cc", datetime(2023, 11, 15, 12, 0, tzinfo=UTC))


def test_events_and_logs_get_their_own_families() -> None:
    decoded = ccmessage.decode(
        'node_state,cluster=fritz,hostname=f0101 event="drained" 1700000000\n'
        'slurmd,cluster=fritz,hostname=f0101,loglevel=warn log="disk almost full" 1700000001\n'
        "cpu_load,cluster=fritz,hostname=f0101 value=1.5 1700000000\n",
        ORIGIN,
    )
    assert [(e.family, e.type) for e in decoded.events] == [
        ("ccmessage", "org.clustercockpit.event.node_state"),
        ("cclog", "org.clustercockpit.log.slurmd"),
    ]
    assert decoded.metrics_skipped == 1


def test_control_and_query_messages_are_skipped_not_rejected() -> None:
    decoded = ccmessage.decode(
        'freq,cluster=fritz,hostname=f0101,method=PUT control="2400" 1700000000\n'
        'energy,cluster=fritz,hostname=f0101 query="SELECT power" 1700000000\n',
        ORIGIN,
    )
    assert (decoded.events, decoded.rejected, decoded.other_skipped) == ([], [], 2)


def test_job_events_in_both_spellings_get_one_type_and_their_job() -> None:
    job = '"{\\"jobId\\":1001,\\"user\\":\\"alice\\"}"'
    decoded = ccmessage.decode(
        f"start_job,cluster=fritz event={job} 1700000000\n"
        f"job,cluster=fritz,function=stop_job event={job} 1700000100\n",
        ORIGIN,
    )
    assert [(e.family, e.type) for e in decoded.events] == [
        ("ccmessage", "org.clustercockpit.event.start_job"),
        ("ccmessage", "org.clustercockpit.event.stop_job"),
    ]
    payloads = [orjson.loads(e.payload) for e in decoded.events]
    assert [p["name"] for p in payloads] == ["start_job", "stop_job"]
    assert [p["data"] for p in payloads] == [{"jobId": 1001, "user": "alice"}] * 2


def test_events_without_a_cluster_tag_take_the_cluster_of_their_json() -> None:
    # cc-backend's NATS API (job and node state events) sends no tags at all: the cluster is
    # in the JSON. The tag and the configured cluster still come first.
    start = {"jobId": 1001, "cluster": "fritz", "startTime": 1234567890}
    stop = {"jobId": 1001, "cluster": "fritz", "stopTime": 1234569000, "jobState": "completed"}
    text = (
        f"job,function=start_job event={event(start)} 1234567890000000000\n"
        f"job,function=stop_job event={event(stop)} 1234569000000000000\n"
        f"nodestate event={event({'cluster': 'alex', 'nodes': []})} 1234567890000000000\n"
        'node_state event="drained" 1234567890\n'
        f"nodestate event={event({'cluster': 'a/b'})} 1234567890\n"
    )
    decoded = ccmessage.decode(text, ORIGIN)
    sources = [e.source for e in decoded.events]
    assert sources == ["/clusters/fritz", "/clusters/fritz", "/clusters/alex"]
    assert [r.location for r in decoded.rejected] == ["line 4", "line 5"]
    assert "tag cluster: missing" in decoded.rejected[0].reason
    alex = event({"cluster": "alex"})
    [tagged, configured] = ccmessage.decode(
        f"nodestate,cluster=c1 event={alex} 1\nnodestate event={alex} 1\n", ORIGIN, cluster="c2"
    ).events
    assert (tagged.source, configured.source) == ("/clusters/c1", "/clusters/c2")


def test_a_cluster_given_with_the_request_is_checked_like_the_tag() -> None:
    line = 'node_state,hostname=f0101 event="drained" 1700000000'
    for given in ("a/b", " "):
        [rejected] = ccmessage.decode(line, ORIGIN, cluster=given).rejected
        assert rejected.reason == (
            f"cluster {given!r} (?cluster= or the source's cluster): not a cluster name "
            "(empty, or contains '/')"
        )


def event(doc: dict[str, object]) -> str:
    """A JSON document as a line-protocol string field."""
    return '"' + orjson.dumps(doc).decode().replace('"', '\\"') + '"'


def test_the_identity_includes_the_timestamp() -> None:
    # Why the database may keep these identities in time partitions: a replay of a line always
    # has the same time, and the same line at another time is another event.
    line = 'node_state,cluster=fritz,hostname=f0101 event="drained"'
    [a] = ccmessage.decode(f"{line} 1700000000", ORIGIN).events
    [b] = ccmessage.decode(f"{line} 1700000000000", ORIGIN).events  # same moment, in ms
    [c] = ccmessage.decode(f"{line} 1700000001", ORIGIN).events
    assert (a.id, a.time) == (b.id, b.time)
    assert a.id != c.id


def test_ids_of_lines_with_a_timestamp_never_change() -> None:
    # Stored data dedups against these: the same lines must keep the ids they always had.
    decoded = ccmessage.decode(
        'node_state,cluster=fritz,hostname=f0101 event="drained" 1700000000\n'
        'node_state,hostname=f0101 event="drained" 1700000000123\n',
        ORIGIN,
        cluster="fritz",
        message_time_ns=1_800_000_000_000_000_000,  # a line's own timestamp comes first
    )
    assert [e.id for e in decoded.events] == [
        "8f6277d9ce2b21fe83fb2a7bd522e88b5f22e8e99c4f65ad9935b6d50a03ff53",
        "715bff31e4b8248730203365f6bff5b2774ba64ec7fdec07298e17e494cecb26",
    ]


def test_a_line_without_timestamp_takes_the_message_time_on_every_delivery() -> None:
    text = 'node_down,cluster=fritz,hostname=n1 event="unreachable"\n'
    sent = 1_748_779_200_123_456_789  # JetStream's stream time: the same on every redelivery
    first = ccmessage.decode(text, ORIGIN, message_time_ns=sent).events
    later = ORIGIN._replace(received_at=datetime(2023, 11, 15, 12, 5, tzinfo=UTC))
    again = ccmessage.decode(text, later, message_time_ns=sent).events
    assert [(e.id, e.time) for e in first] == [(e.id, e.time) for e in again]
    assert first[0].time == datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert first[0].received_at != again[0].received_at
    # Without a message time (HTTP), the receive time stands in.
    [http] = ccmessage.decode(text, ORIGIN).events
    assert http.time == ORIGIN.received_at
    assert http.id != first[0].id


def test_identical_lines_without_timestamp_in_one_message_are_two_events() -> None:
    line = 'node_down,cluster=fritz,hostname=n1 event="unreachable"'
    for sent in (None, 1_748_779_200_000_000_000):
        events = ccmessage.decode(f"{line}\n{line}\n", ORIGIN, message_time_ns=sent).events
        assert len({e.id for e in events}) == 2
    # With a timestamp they are one event sent twice: a duplicate.
    events = ccmessage.decode(f"{line} 1700000000\n{line} 1700000000\n", ORIGIN).events
    assert len({e.id for e in events}) == 1
