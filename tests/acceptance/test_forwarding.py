"""`collector run` as a bridge (a folder source, a required http sink, no database) against a
local receiver: what a required forwarding sink does with an event the receiver refuses, and
how shutdown drains a sink that keeps failing."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.acceptance.http_helpers import log_records, start_http_collector
from tests.acceptance.test_folder_ingest import drop, pending_files
from tests.conftest import wait_for
from tests.http_receiver import REFUSAL, Receiver

BRIDGE = """
[http]
enabled = true
port = 0

[pipeline]
shutdown_timeout_s = {timeout}

[sources.inbox]
type = "folder"
path = "inbox"
settle_s = 0
poll_interval_s = 0.05

[sinks.forward]
type = "http"
url = "{url}"
required = true
retries = {retries}
backoff_s = {backoff}
"""


def orders(poison_at: int | None = None) -> bytes:
    """Six CloudEvents as one JSON array; the one at `poison_at` carries "poison" as data."""
    return orjson.dumps(
        [
            {
                "specversion": "1.0",
                "id": f"p-{i}",
                "source": "/shop",
                "type": "com.example.order",
                "data": "poison" if i == poison_at else f"p-{i}",
            }
            for i in range(6)
        ]
    )


def sent_ids(bodies: list[bytes]) -> list[str]:
    return [orjson.loads(b)["id"] for b in bodies]


def test_a_required_http_sink_leaves_out_a_refused_event_and_sends_the_rest(
    collector_process: Any, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.poison = b"poison"
    config = BRIDGE.format(timeout=30, url=receiver.url, retries=5, backoff=0.01)
    collector = start_http_collector(collector_process(config))
    inbox = tmp_path / "inbox"

    drop(inbox, "orders.json", orders(poison_at=2))

    # The file is acknowledged (done/) once every event was offered: it is not read again.
    wait_for(lambda: not pending_files(inbox) and list((inbox / "done").iterdir()))
    assert sent_ids(receiver.bodies(202)) == ["p-0", "p-1", "p-3", "p-4", "p-5"]
    assert sent_ids(receiver.bodies(400)) == ["p-2"]
    metrics = httpx.get(collector.url + "/metrics").text
    assert 'collector_sink_refused_total{sink="forward"} 1.0' in metrics
    assert collector.process.stop() == 0
    records = list(log_records(collector.logs()))
    [refused] = [r for r in records if r["event"] == "http_sink_refused"]
    assert (refused["id"], refused["sink"]) == ("p-2", "forward")
    assert "HTTP 400: " + REFUSAL.decode() in refused["error"]
    failures = {"batch_failed", "file_delivery_failed", "optional_sink_failed"}
    assert not [r for r in records if r["event"] in failures]


def test_shutdown_drains_within_one_shutdown_timeout(
    collector_process: Any, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.fail_first = 1_000_000  # a required sink that always answers 503
    timeout = 4
    config = BRIDGE.format(timeout=timeout, url=receiver.url, retries=10, backoff=1)
    collector = start_http_collector(collector_process(config))
    inbox = tmp_path / "inbox"
    drop(inbox, "orders.json", orders())
    wait_for(lambda: receiver.requests)  # in flight: the sink is retrying

    assert collector.process.stop(signal.SIGTERM) == 0

    records = list(log_records(collector.logs()))
    names = [r["event"] for r in records]
    shutdown = names[names.index("shutdown_requested") :]
    assert [n for n in shutdown if n.startswith(("shutdown", "collector_"))] == [
        "shutdown_requested",
        "shutdown_timeout",
        "collector_stopped",
    ]
    # One deadline for sources and pipeline together (it used to be one each, one after the
    # other: twice the timeout). Generous: the bound is half a timeout past the promise.
    at = {r["event"]: datetime.fromisoformat(r["timestamp"]) for r in records}
    drained = (at["shutdown_timeout"] - at["shutdown_requested"]).total_seconds()
    assert drained < 1.5 * timeout
    # Not acknowledged: the file is still claimed, to be read again after a restart.
    assert pending_files(inbox)
    assert not (inbox / "done").exists() or not list((inbox / "done").iterdir())
