"""The delivery views of `api` against realistic CDEvents histories, with exact expected rows.

Two histories: the conformance examples of CDEvents 0.4.1 and 0.5.1 (every subject and
predicate, each version's field names), and a generated working day of a team (pipelines,
tasks, a build, test suites and cases of three spec versions, an artifact from a merged
change, deployments, a rollback, incidents, a ticket). The generated one is ingested in
several orders — time order in one batch, reversed one event per batch, shuffled batches with
replays — and every order must give the same, exactly expected rows.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.cdevents_factory import (
    DELIVERY_VIEWS,
    Doc,
    as_cloudevent,
    cdevent,
    conformance,
    forget_everything,
    ingest,
    rows,
    snapshot,
)

Conn = psycopg.Connection[Any]

# -- the conformance examples of both released versions ------------------------------------------

EXAMPLE = datetime(2023, 3, 20, 14, 27, 5, 315384, tzinfo=UTC)  # most examples' timestamp
INCIDENT = datetime(2022, 11, 11, 13, 52, 20, 79000, tzinfo=UTC)  # incident and ticket examples
OCI = "pkg:oci/myapp@sha256%3A0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db934"
GOLANG = "pkg:golang/mygit.com/myorg/myapp@234fd47e07d1004f0aed9c"
SIGNATURE = (
    "MEYCIQCBT8U5ypDXWCjlNKfzTV4KH516/SK13NZSh8znnSMNkQIhAJ3XiQlc9PM1KyjITcZXHotdMB+J3NGua5T/"
    "yshmiPmp"
)
ERRORS = "Something went wrong\nWith some more details"


def conformance_expected(v05: dict[str, Doc]) -> dict[str, list[dict[str, Any]]]:
    """Both versions' examples share subject ids and timestamps, so each view has one row that
    merges them. At equal times the later lifecycle stage is the latest event, then the greater
    type (0.5's type versions are higher): every last_payload is a 0.5.1 example."""
    t, i = EXAMPLE, INCIDENT
    common = {"source": "/event/source/123", "time": t, "last_event_at": t}
    return {
        "pipeline_runs": [
            {
                "run_id": "mySubject123",
                **common,
                "pipeline_name": "myPipeline",
                "status": "finished",
                "outcome": "failure",
                "queued_at": t,
                "started_at": t,
                "finished_at": t,
                "duration_s": 0.0,
                "queue_s": 0.0,
                "url": "https://www.example.com/mySubject123",
                "errors": ERRORS,
                "events": 6,
                "last_payload": v05["pipelinerun_finished"],
            }
        ],
        "task_runs": [
            {
                "run_id": "mySubject123",
                **common,
                "task_name": "myTask",
                "pipeline_run_id": "mySubject123",
                "status": "finished",
                "outcome": "failure",
                "started_at": t,
                "finished_at": t,
                "duration_s": 0.0,
                "url": "https://www.example.com/mySubject123",
                "errors": ERRORS,
                "events": 4,
                "last_payload": v05["taskrun_finished"],
            }
        ],
        "builds": [
            {
                "build_id": "mySubject123",
                **common,
                "status": "finished",
                "queued_at": t,
                "started_at": t,
                "finished_at": t,
                "duration_s": 0.0,
                "queue_s": 0.0,
                "artifact_id": OCI + "27",
                "events": 6,
                "last_payload": v05["build_finished"],
            }
        ],
        "test_case_runs": [
            {
                "run_id": "myTestCaseRun123",
                **common,
                "test_case_id": "92834723894",
                "test_case_name": "Login Test",
                "test_case_type": "integration",
                "test_case_version": "1.0",
                "url": None,
                "test_suite_run_id": "test-suite-111",
                "environment": "dev",
                # finished and skipped rank alike and share the timestamp: the status text
                # decides, never the arrival order.
                "status": "skipped",
                "outcome": "success",  # 0.4's "pass" and 0.5's "success"
                "reason": "Not running in this environment",
                "severity": None,
                "queued_at": t,
                "started_at": t,
                "finished_at": t,
                "skipped_at": t,
                "duration_s": 0.0,
                "queue_s": 0.0,
                "events": 8,
                "last_payload": v05["testcaserun_skipped"],
            }
        ],
        "test_suite_runs": [
            {
                "run_id": "myTestSuiteRun123",
                **common,
                "test_suite_id": "92834723894",
                "test_suite_name": "Auth TestSuite",
                "test_suite_version": "1.0",
                "url": None,
                "environment": "dev",
                "status": "finished",
                "outcome": "failure",  # 0.4's "fail" and 0.5's "failure"
                "reason": "Host 123.34.23.32 not found",
                "severity": "critical",
                "queued_at": t,
                "started_at": t,
                "finished_at": t,
                "duration_s": 0.0,
                "queue_s": 0.0,
                "events": 6,
                "last_payload": v05["testsuiterun_finished"],
            }
        ],
        "artifacts": [
            {
                "artifact_id": GOLANG,
                **common,
                "status": "deleted",
                "packaged_at": t,
                "signed_at": t,
                "published_at": t,
                "downloaded_at": t,
                "deleted_at": t,
                "change_id": "myChange123",
                "change_source": "my-git.example/an-org/a-repo",
                "sbom_uri": "https://sbom.repo/myorg/234fd47e07d1004f0aed9c.sbom",
                "signature": SIGNATURE,
                "events": 10,
                "last_payload": v05["artifact_deleted"],
            }
        ],
        "changes": [
            {
                "change_id": "mySubject123",
                **common,
                "repository": "TestRepo/TestOrg",
                "status": "merged",  # merged and abandoned at one instant: the status text decides
                "description": "This PR address a bug from a recent PR",
                "created_at": t,
                "updated_at": t,
                "reviewed_at": t,
                "merged_at": t,
                "abandoned_at": t,
                "events": 10,
                "last_payload": v05["change_merged"],
            }
        ],
        "branches": [
            {
                "branch_id": "mySubject123",
                **common,
                "repository": "TestRepo/TestOrg",
                "status": "deleted",
                "created_at": t,
                "deleted_at": t,
                "events": 4,
                "last_payload": v05["branch_deleted"],
            }
        ],
        "repositories": [
            {
                "repository_id": "mySubject123",
                **common,
                "name": "TestRepo",
                "owner": "TestOrg",
                "url": "https://example.org/TestOrg/TestRepo",
                "view_url": "https://example.org/view/TestOrg/TestRepo",
                "status": "deleted",
                "created_at": t,
                "modified_at": t,
                "deleted_at": t,
                "events": 6,
                "last_payload": v05["repository_deleted"],
            }
        ],
        "environments": [
            {
                "environment_id": "mySubject123",
                **common,
                "name": "testEnv",
                "url": "https://example.org/testEnv",
                "status": "deleted",
                "created_at": t,
                "modified_at": t,
                "deleted_at": t,
                "events": 6,
                "last_payload": v05["environment_deleted"],
            }
        ],
        "incidents": [
            {
                "incident_id": "incident-123",
                "source": "/monitoring/prod1",
                "time": i,
                "environment": "prod1",
                "service": "myApp",
                "artifact_id": OCI + "39",  # the resolved event's, the latest stage
                "description": "Response time restored below 100ms",
                "ticket_url": "https://my-issues.example/incidents/ticket-345",
                "status": "resolved",
                "detected_at": i,
                "reported_at": i,
                "resolved_at": i,
                "time_to_restore_s": 0.0,
                "last_event_at": i,
                "events": 6,
                "last_payload": v05["incident_resolved"],
            }
        ],
        "tickets": [
            {
                "ticket_id": "ticket-123",
                "source": "/ticketing/system",
                "time": i,
                "summary": "New CVE-123 detected",
                "ticket_type": "task",
                "priority": "high",
                "group_name": "security",
                "creator": "Alice",
                "assignees": ["Bob"],
                "labels": ["bug"],
                "milestone": "123",
                "resolution": "completed",
                "updated_by": "Bob",
                "url": "https://example.issues.com/ticket123",
                "status": "closed",
                "created_at": i,
                "updated_at": i,
                "closed_at": i,
                "last_event_at": i,
                "events": 6,
                "last_payload": v05["ticket_closed"],
            }
        ],
        "deployments": [
            {
                "time": t,
                "environment": "test123",
                "service": "mySubject123",
                "artifact_id": None if action == "removed" else OCI + "27",
                "action": action,
                "event_id": "271069a8-fc18-44f1-b38f-9d70a1695819",
                "event_source": "/event/source/123",
                "event_type": f"dev.cdevents.service.{action}.{version}",
            }
            for action, version in sorted(
                (a, v)
                for a in ("deployed", "upgraded", "rolledback", "removed")
                for v in ("0.2.0", "0.3.0")
            )
        ],
        # Four actions at one instant: the later step (removed) is what runs there now.
        "service_state": [
            {
                "environment": "test123",
                "service": "mySubject123",
                "artifact_id": None,
                "state": "removed",
                "last_action": "removed",
                "since": t,
            }
        ],
    }


def test_conformance_examples_of_both_versions(db: Conn, database_url: str) -> None:
    v04, v05 = conformance("v0.4.1"), conformance("v0.5.1")
    results = ingest(database_url, [list(v04.values()), list(v05.values())])
    assert [(r.stored, len(r.duplicates)) for r in results] == [(45, 0), (45, 0)]

    expected = conformance_expected(v05)
    assert snapshot(db) == expected

    # Replays, whole or in parts, change nothing.
    replay = ingest(database_url, [list(v05.values()), list(v04.values())[:10]])
    assert [(r.stored, len(r.duplicates)) for r in replay] == [(0, 45), (0, 10)]
    assert snapshot(db) == expected


def test_every_delivery_view_is_covered() -> None:
    # The snapshot compares every view of api that tracks CDEvents; a new one must be added.
    assert {v.name for v in DELIVERY_VIEWS} == {
        "pipeline_runs",
        "task_runs",
        "builds",
        "test_case_runs",
        "test_suite_runs",
        "artifacts",
        "changes",
        "branches",
        "repositories",
        "environments",
        "incidents",
        "tickets",
        "deployments",
        "service_state",
    }


def test_the_snapshot_reads_every_column(db: Conn) -> None:
    documented = rows(
        db,
        "SELECT c.relname AS view, count(*) AS columns FROM pg_class c"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
        " WHERE c.relnamespace = 'api'::regnamespace AND c.relname = ANY(%s) GROUP BY 1",
        ([v.name for v in DELIVERY_VIEWS],),
    )
    expected = conformance_expected(conformance("v0.5.1"))
    assert {r["view"]: r["columns"] for r in documented} == {
        name: len(view_rows[0]) for name, view_rows in expected.items()
    }
