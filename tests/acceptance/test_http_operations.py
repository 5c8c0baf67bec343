"""`collector run` as a process: /metrics, /healthz, /readyz, /openapi.json over a real socket."""

from __future__ import annotations

import json
import signal
import socket
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.http_helpers import HttpCollector, cloudevent, start_http_collector, unique

CONFIG = """
[http]
port = 0

[sources.hooks]
type = "http"

[sources.locked]
type = "http"
auth = { type = "token", token = "s3cret" }

[sources.cc]
type = "http"
format = "lineprotocol"

[sinks.db]
type = "postgres"

[sinks.out]
type = "stdout"
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def collector(collector_process: Any, database_url: str) -> HttpCollector:
    process = collector_process(CONFIG, env={"COLLECTOR__DATABASE__URL": database_url})
    return start_http_collector(process)


def test_metrics_follow_stored_duplicate_and_rejected_events(collector: HttpCollector) -> None:
    with httpx.Client(base_url=collector.url, timeout=30) as client:
        before = scrape(client)
        assert sample(before, "collector_events_received_total", source="hooks") == 0
        assert sample(before, "collector_events_stored_total", source="cc") == 0
        assert sample(before, "collector_queue_depth") == 0
        assert sample(before, "collector_database_errors_total", sink="db") == 0
        assert sample(before, "collector_optional_sink_dropped_total", sink="out") == 0

        batch = [cloudevent(unique()) for _ in range(3)]
        headers = {"content-type": "application/cloudevents-batch+json"}
        first = client.post("/webhook/hooks", json=batch, headers=headers)
        again = client.post("/webhook/hooks", json=batch, headers=headers)
        bad = client.post("/webhook/hooks", json={"specversion": "1.0", "source": "/x"})
        unauthorized = client.post("/webhook/locked", json=cloudevent(unique()))

        assert (first.status_code, first.json()["duplicates"]) == (202, 0)
        assert (again.status_code, again.json()["duplicates"]) == (202, 3)
        assert bad.status_code == 400
        assert unauthorized.status_code == 401

        after = scrape(client)

    def hooks(name: str) -> float | None:
        return sample(after, name, source="hooks")

    assert hooks("collector_events_received_total") == 7
    assert hooks("collector_events_stored_total") == 3
    assert hooks("collector_events_duplicate_total") == 3
    assert hooks("collector_events_rejected_total") == 1
    requests = "collector_http_requests_total"
    assert sample(after, requests, source="hooks", code="202") == 2
    assert sample(after, requests, source="hooks", code="400") == 1
    assert sample(after, requests, source="locked", code="401") == 1
    # Refused before the body is read: nothing received.
    assert sample(after, "collector_events_received_total", source="locked") == 0
    # Each answer waited for its commit, so each request was a batch of its own.
    assert sample(after, "collector_batch_size_events_count") == 3
    assert sample(after, "collector_batch_size_events_sum") == 7
    assert sample(after, "collector_commit_seconds_count") == 3
    assert sample(after, "collector_commit_seconds_bucket", le="+Inf") == 3
    assert sample(after, "collector_queue_depth") == 0


def test_health_readiness_and_openmetrics(collector: HttpCollector) -> None:
    with httpx.Client(base_url=collector.url, timeout=30) as client:
        healthz = client.get("/healthz")
        readyz = client.get("/readyz")
        openmetrics = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
        wrong_method = client.post("/metrics")
        heads = {path: client.head(path) for path in ("/healthz", "/readyz", "/openapi.json")}

    assert (healthz.status_code, healthz.json()) == (200, {"status": "alive"})
    assert readyz.status_code == 200
    assert readyz.json() == {"status": "ready", "problems": [], "queue_depth": 0}
    assert openmetrics.status_code == 200
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD"
    for path, head in heads.items():  # as load balancers and uptime checks probe
        assert head.status_code == 200, path
        assert head.content == b""
        assert int(head.headers["content-length"]) > 0

    # What port scanners send, and a client speaking TLS to plain HTTP: uvicorn answers 400 and
    # warns. stderr is no terminal, so its warning too is a JSON line, like every other.
    with socket.create_connection((collector.host, collector.port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not HTTP\r\n\r\n")
        assert raw.recv(1024).startswith(b"HTTP/1.1 400 ")
    # A closed terminal (SIGHUP) drains and stops like SIGTERM.
    assert collector.process.stop(signal.SIGHUP) == 0
    lines = [json.loads(line) for line in collector.logs().splitlines()]
    warned = [line for line in lines if line.get("logger") == "uvicorn.error"]
    assert [(line["level"], line["event"]) for line in warned] == [
        ("warning", "Invalid HTTP request received.")
    ]
    stopped = [line for line in lines if line["event"] == "shutdown_requested"]
    assert [line["signal"] for line in stopped] == ["SIGHUP"]
    assert lines[-1]["event"] == "collector_stopped"


def test_openapi_document_describes_the_running_server(collector: HttpCollector) -> None:
    with httpx.Client(base_url=collector.url, timeout=30) as client:
        response = client.get("/openapi.json")
        doc = response.json()
        validate(doc)
        # Every documented operation is served: no 404, and no 405 for its method.
        for path, item in doc["paths"].items():
            for method in item:
                answer = client.request(method.upper(), path, content=b"")
                assert answer.status_code not in (404, 405), (method, path, answer.text)

    assert response.status_code == 200
    assert set(doc["paths"]) == {
        "/webhook/hooks",
        "/webhook/locked",
        "/api/write",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }
    assert doc["paths"]["/webhook/locked"]["post"]["security"] == [{"locked_token": []}]
