"""CDEvents documents as producers of spec 0.3, 0.4 and 0.5 send them, and their ingestion
through the real path: `normalise` (as every source does), then `PostgresSink` (one call of
`collector.ingest` per batch).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import anyio
import orjson
import psycopg
from psycopg.rows import dict_row

from collector.events import Origin, normalise
from collector.ports import Batch, BatchResult
from collector.sinks.postgres import PostgresSink
from tests.conftest import SPEC

Doc = dict[str, Any]

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)
SPEC_VERSIONS = {"0.4": "v0.4.1", "0.5": "v0.5.1"}


def conformance(version: str) -> dict[str, Doc]:
    """The CDEvents conformance examples of a spec folder (v0.4.1, v0.5.1) by file stem."""
    folder = SPEC / version / "conformance"
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


@cache
def _types(spec: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(subject, predicate) -> (event type, subject.type) as the conformance examples give them."""
    found = {}
    for doc in conformance(SPEC_VERSIONS[spec]).values():
        event_type = doc["context"]["type"]
        subject, predicate = event_type.split(".")[2:4]
        found[subject, predicate] = (event_type, doc["subject"].get("type"))
    return found


def cdevent(
    spec: str,
    subject: str,
    predicate: str,
    subject_id: str,
    at: datetime,
    content: Doc | None = None,
    *,
    source: str = "/ci",
    subject_source: str | None = None,
    event_id: str | None = None,
) -> Doc:
    """One CDEvent of spec '0.3', '0.4' or '0.5' (context fields and type versions as each
    release has them; 0.3's testcase / testsuite events carry no content)."""
    if spec == "0.3":
        event_type = f"dev.cdevents.{subject}.{predicate}.0.1.0"
        subject_kind: str | None = {"testcase": "testCase", "testsuite": "testSuite"}.get(subject)
        context: Doc = {"version": "0.3.0"}
    else:
        event_type, subject_kind = _types(spec)[subject, predicate]
        context = {"specversion": "0.5.1"} if spec == "0.5" else {"version": "0.4.1"}
    context |= {
        "id": event_id or f"{subject}/{subject_id}/{predicate}/{spec}",
        "source": source,
        "type": event_type,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
    }
    body: Doc = {"id": subject_id, "source": subject_source or source}
    if subject_kind is not None:
        body["type"] = subject_kind
    body["content"] = content or {}
    return {"context": context, "subject": body}


def as_cloudevent(doc: Doc) -> Doc:
    """The CDEvent carried as a structured CloudEvent (the CDEvents CloudEvents binding)."""
    context = doc["context"]
    return {
        "specversion": "1.0",
        "id": context["id"],
        "source": context["source"],
        "type": context["type"],
        "time": context["timestamp"],
        "datacontenttype": "application/json",
        "data": doc,
    }


def ingest(url: str, batches: Iterable[Sequence[Doc]]) -> list[BatchResult]:
    """Normalise each document as a source does and write each batch through PostgresSink."""
    origin = Origin(received_via="test", received_at=RECEIVED)
    events = [[normalise(doc, orjson.dumps(doc), origin, {}) for doc in batch] for batch in batches]

    async def write() -> list[BatchResult]:
        sink = PostgresSink("test", url, pool_size=1)
        await sink.open()
        try:
            return [await sink.write(Batch(batch)) for batch in events]
        finally:
            await sink.close()

    return anyio.run(write)


@dataclass(frozen=True)
class View:
    name: str
    order_by: str


DELIVERY_VIEWS = [
    View("pipeline_runs", "run_id, source"),
    View("task_runs", "run_id, source"),
    View("builds", "build_id, source"),
    View("test_case_runs", "run_id, source"),
    View("test_suite_runs", "run_id, source"),
    View("artifacts", "artifact_id, source"),
    View("changes", "change_id, source"),
    View("branches", "branch_id, source"),
    View("repositories", "repository_id, source"),
    View("environments", "environment_id, source"),
    View("incidents", "incident_id, source"),
    View("tickets", "ticket_id, source"),
    View("deployments", "time, event_type, event_id"),
    View("service_state", "environment, service"),
]


def rows(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[dict[str, Any]]]:
    """Every delivery view, every row and column, in a stable order."""
    return {
        view.name: rows(conn, f"SELECT * FROM api.{view.name} ORDER BY {view.order_by}")
        for view in DELIVERY_VIEWS
    }


def forget_everything(conn: psycopg.Connection[Any]) -> None:
    """Empty events and lifecycle state, to ingest the same history again in another order."""
    conn.execute(
        "TRUNCATE collector.events, collector.event_identities, collector.subjects,"
        " collector.deployments, collector.service_state"
    )
