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


def test_the_identity_includes_the_timestamp() -> None:
    # Why the database may keep these identities in time partitions: a replay of a line always
    # has the same time, and the same line at another time is another event.
    line = 'node_state,cluster=fritz,hostname=f0101 event="drained"'
    [a] = ccmessage.decode(f"{line} 1700000000", ORIGIN).events
    [b] = ccmessage.decode(f"{line} 1700000000000", ORIGIN).events  # same moment, in ms
    [c] = ccmessage.decode(f"{line} 1700000001", ORIGIN).events
    assert (a.id, a.time) == (b.id, b.time)
    assert a.id != c.id
