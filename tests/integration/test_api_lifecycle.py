"""The delivery views of `api` against realistic CDEvents histories, with exact expected rows.

Two histories: the conformance examples of CDEvents 0.4.1 and 0.5.1 (every subject and
predicate, each version's field names), and a generated working day of a team (pipelines,
tasks, a build, test suites and cases of three spec versions, an artifact from a merged
change, deployments, a rollback, incidents, a ticket). The generated one is ingested in
several orders — time order in one batch, reversed one event per batch, shuffled batches with
replays — and every order must give the same, exactly expected rows.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import psycopg
import pytest

from collector.db import migrate as migrations
from tests.integration.cdevents_factory import (
    DELIVERY_VIEWS,
    Doc,
    as_cloudevent,
    cdevent,
    conformance,
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


def test_state_folded_before_0005_is_carried_on_after_it(empty_database_url: str) -> None:
    # 0005 moved the fold from triggers into collector.ingest: a database that folded with the
    # triggers goes on from the rows they left.
    async def migrate(known: list[migrations.Migration] | None) -> None:
        async with await psycopg.AsyncConnection.connect(empty_database_url, autocommit=True) as c:
            await migrations.migrate(c, known)

    shipped = migrations.load_migrations()
    before = [m for m in shipped if m.version < 5]
    v04, v05 = conformance("v0.4.1"), conformance("v0.5.1")
    anyio.run(migrate, before)
    ingest(empty_database_url, [list(v04.values())])
    anyio.run(migrate, None)
    results = ingest(empty_database_url, [list(v05.values()), list(v04.values())])
    assert [(r.stored, len(r.duplicates)) for r in results] == [(45, 0), (0, 45)]
    with psycopg.connect(empty_database_url) as db:
        assert snapshot(db) == conformance_expected(v05)


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


# -- a generated working day, in every order ------------------------------------------------------

T = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
AA = "pkg:oci/checkout@sha256:aa"


def s(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def workday() -> dict[str, Doc]:
    """A team's day: events of CDEvents 0.3, 0.4 and 0.5, some references given as plain
    strings, one CDEvent wrapped in a CloudEvent; named so expectations can point at them."""
    ev = cdevent
    scm = {"id": "checkout", "source": "/scm"}
    suite = {"id": "unit", "name": "Unit tests", "version": "2", "uri": "https://tests/unit"}
    login = {"id": "login", "name": "Login", "type": "unit", "version": "1", "uri": "https://t/l"}
    incident = {
        "description": "High latency",
        "environment": {"id": "prod", "source": "/k8s"},
        "service": {"id": "checkout", "source": "/k8s"},
        "artifactId": AA,
    }
    ticket = {
        "summary": "Latency in checkout",
        "ticketType": "bug",
        "priority": "high",
        "group": "sre",
        "creator": "alice",
        "assignees": ["bob"],
        "labels": ["incident"],
        "milestone": "m1",
        "uri": "https://jira/T-1",
    }
    p1842 = {"pipelineName": "checkout", "uri": "https://ci/1842"}
    return {
        # Pipeline runs: complete (0.5), never finished (0.4, url), only finished (0.5).
        "p1842_queued": ev("0.5", "pipelinerun", "queued", "1842", s(0), p1842),
        "p1842_started": ev("0.5", "pipelinerun", "started", "1842", s(30), p1842),
        "p1842_finished": as_cloudevent(
            ev("0.5", "pipelinerun", "finished", "1842", s(330), {**p1842, "outcome": "success"})
        ),
        "p1843_queued": ev(
            "0.4", "pipelinerun", "queued", "1843", s(60), {"pipelineName": "checkout"}
        ),
        "p1843_started": ev(
            "0.4",
            "pipelinerun",
            "started",
            "1843",
            s(90),
            {"pipelineName": "checkout", "url": "https://ci/1843"},
        ),
        "p1844_finished": ev(
            "0.5",
            "pipelinerun",
            "finished",
            "1844",
            s(400),
            {"pipelineName": "nightly", "outcome": "failure", "errors": "tests failed"},
        ),
        # Task runs of 1842: the pipeline run as a reference object (0.5) and as a string (0.4).
        "compile_started": ev(
            "0.5",
            "taskrun",
            "started",
            "compile-1842",
            s(35),
            {"taskName": "compile", "pipelineRun": {"id": "1842", "source": "/ci"}},
        ),
        "compile_finished": ev(
            "0.5",
            "taskrun",
            "finished",
            "compile-1842",
            s(95),
            {"taskName": "compile", "pipelineRun": {"id": "1842"}, "outcome": "success"},
        ),
        "test_started": ev(
            "0.4",
            "taskrun",
            "started",
            "test-1842",
            s(100),
            {"taskName": "test", "pipelineRun": "1842", "url": "https://ci/1842/test"},
        ),
        "test_finished": ev(
            "0.4",
            "taskrun",
            "finished",
            "test-1842",
            s(320),
            {"taskName": "test", "pipelineRun": "1842", "outcome": "failure", "errors": "3 failed"},
        ),
        # A build (0.4).
        "build_queued": ev("0.4", "build", "queued", "b-77", s(31)),
        "build_started": ev("0.4", "build", "started", "b-77", s(36)),
        "build_finished": ev("0.4", "build", "finished", "b-77", s(296), {"artifactId": AA}),
        # Test suites: 0.5, 0.3 (the subject is the suite), 0.4 with testSuite.url then uri.
        "suite9_queued": ev(
            "0.5",
            "testsuiterun",
            "queued",
            "suite-9",
            s(100),
            {"testSuite": suite, "environment": {"id": "ci"}, "trigger": {"type": "pipeline"}},
        ),
        "suite9_started": ev(
            "0.5",
            "testsuiterun",
            "started",
            "suite-9",
            s(110),
            {"testSuite": suite, "environment": {"id": "ci"}},
        ),
        "suite9_finished": ev(
            "0.5",
            "testsuiterun",
            "finished",
            "suite-9",
            s(310),
            {
                "testSuite": suite,
                "environment": {"id": "ci"},
                "outcome": "failure",
                "severity": "high",
                "reason": "1 test failed",
            },
        ),
        "integration_started": ev("0.3", "testsuite", "started", "integration", s(120)),
        "integration_finished": ev("0.3", "testsuite", "finished", "integration", s(300)),
        "suite10_queued": ev(
            "0.4",
            "testsuiterun",
            "queued",
            "suite-10",
            s(130),
            {"testSuite": {"id": "e2e", "url": "https://tests/e2e-old"}, "environment": "ci"},
        ),
        "suite10_started": ev(
            "0.4",
            "testsuiterun",
            "started",
            "suite-10",
            s(140),
            {"testSuite": {"id": "e2e", "uri": "https://tests/e2e"}, "environment": "ci"},
        ),
        # Test cases: 0.5 complete, 0.4 failed ("fail"), 0.4 skipped, 0.3 testcase.
        "tc1_queued": ev(
            "0.5",
            "testcaserun",
            "queued",
            "tc-1",
            s(111),
            {"testCase": login, "environment": {"id": "ci"}},
        ),
        "tc1_started": ev(
            "0.5",
            "testcaserun",
            "started",
            "tc-1",
            s(112),
            {"testCase": login, "environment": {"id": "ci"}},
        ),
        "tc1_finished": ev(
            "0.5",
            "testcaserun",
            "finished",
            "tc-1",
            s(115),
            {
                "testCase": login,
                "environment": {"id": "ci"},
                "testSuiteRun": {"id": "suite-9", "source": "/ci"},
                "outcome": "success",
            },
        ),
        "tc2_started": ev(
            "0.4",
            "testcaserun",
            "started",
            "tc-2",
            s(116),
            {"testCase": {"id": "logout", "name": "Logout", "type": "unit"}, "environment": "ci"},
        ),
        "tc2_finished": ev(
            "0.4",
            "testcaserun",
            "finished",
            "tc-2",
            s(121),
            {
                "testCase": {"id": "logout", "name": "Logout", "type": "unit"},
                "environment": "ci",
                "outcome": "fail",
                "severity": "high",
                "reason": "assert 1 == 2",
            },
        ),
        "tc3_skipped": ev(
            "0.4",
            "testcaserun",
            "skipped",
            "tc-3",
            s(122),
            {"testCase": {"id": "slow"}, "reason": "flaky"},
        ),
        "smoke_queued": ev("0.3", "testcase", "queued", "checkout-smoke", s(200)),
        "smoke_started": ev("0.3", "testcase", "started", "checkout-smoke", s(201)),
        "smoke_finished": ev("0.3", "testcase", "finished", "checkout-smoke", s(211)),
        # Artifacts: one built from change pr-12 and downloaded later, one deleted.
        "aa_packaged": ev(
            "0.5",
            "artifact",
            "packaged",
            AA,
            s(297),
            {"change": {"id": "pr-12", "source": "/scm/checkout"}},
        ),
        "aa_signed": ev("0.5", "artifact", "signed", AA, s(298), {"signature": "sig"}),
        "aa_published": ev(
            "0.5", "artifact", "published", AA, s(299), {"sbom": {"uri": "https://sbom/aa"}}
        ),
        "aa_downloaded": ev("0.5", "artifact", "downloaded", AA, s(1000), {"user": "deployer"}),
        "bb_packaged": ev("0.4", "artifact", "packaged", "pkg:oci/old@sha256:bb", s(10)),
        "bb_deleted": ev("0.4", "artifact", "deleted", "pkg:oci/old@sha256:bb", s(20)),
        # Changes: merged (0.5), abandoned with the repository as a string (0.4).
        "pr12_created": ev(
            "0.5",
            "change",
            "created",
            "pr-12",
            s(-3600),
            {"description": "Add login", "repository": scm},
            source="/scm/checkout",
        ),
        "pr12_updated": ev(
            "0.5",
            "change",
            "updated",
            "pr-12",
            s(-1800),
            {"repository": scm},
            source="/scm/checkout",
        ),
        "pr12_reviewed": ev(
            "0.5",
            "change",
            "reviewed",
            "pr-12",
            s(-900),
            {"repository": scm},
            source="/scm/checkout",
        ),
        "pr12_merged": ev(
            "0.5",
            "change",
            "merged",
            "pr-12",
            s(-600),
            {"repository": scm},
            source="/scm/checkout",
        ),
        "pr13_created": ev(
            "0.4",
            "change",
            "created",
            "pr-13",
            s(-500),
            {"description": "Try", "repository": "checkout"},
            source="/scm/checkout",
        ),
        "pr13_abandoned": ev(
            "0.4",
            "change",
            "abandoned",
            "pr-13",
            s(-100),
            {"repository": "checkout"},
            source="/scm/checkout",
        ),
        # Branches and the repository (url in 0.4, uri in 0.5).
        "login_branch_created": ev(
            "0.5",
            "branch",
            "created",
            "feature/login",
            s(-7200),
            {"repository": scm},
            source="/scm",
        ),
        "login_branch_deleted": ev(
            "0.5",
            "branch",
            "deleted",
            "feature/login",
            s(-500),
            {"repository": scm},
            source="/scm",
        ),
        "main_branch_created": ev(
            "0.4",
            "branch",
            "created",
            "main",
            s(-86400),
            {"repository": "checkout"},
            source="/scm",
        ),
        "repo_created": ev(
            "0.4",
            "repository",
            "created",
            "checkout",
            s(-30 * 86400),
            {
                "name": "checkout",
                "owner": "shop",
                "url": "https://git/shop/checkout",
                "viewUrl": "https://git/shop/checkout/view",
            },
            source="/scm",
        ),
        "repo_modified": ev(
            "0.5",
            "repository",
            "modified",
            "checkout",
            s(-86400),
            {"name": "checkout", "owner": "shop", "uri": "https://git/shop/checkout.git"},
            source="/scm",
        ),
        # Environments.
        "prod_created": ev(
            "0.4",
            "environment",
            "created",
            "prod",
            s(-10 * 86400),
            {"name": "production", "url": "https://prod.example"},
            source="/k8s",
        ),
        "prod_modified": ev(
            "0.5",
            "environment",
            "modified",
            "prod",
            s(-3600),
            {"name": "production", "uri": "https://prod.example/v2"},
            source="/k8s",
        ),
        "staging_created": ev(
            "0.5",
            "environment",
            "created",
            "staging",
            s(-5 * 86400),
            {"name": "staging"},
            source="/k8s",
        ),
        "staging_deleted": ev(
            "0.5",
            "environment",
            "deleted",
            "staging",
            s(-60),
            {"name": "staging"},
            source="/k8s",
        ),
        # Deployments: environment as an object (0.5) and as a string (0.4).
        "payments_upgraded": ev(
            "0.4",
            "service",
            "upgraded",
            "payments",
            s(50),
            {"environment": {"id": "prod"}, "artifactId": "pkg:oci/payments@sha256:cc"},
            source="/cd",
        ),
        "payments_staging_deployed": ev(
            "0.5",
            "service",
            "deployed",
            "payments",
            s(100),
            {"environment": {"id": "staging"}, "artifactId": "pkg:oci/payments@sha256:cd"},
            source="/cd",
        ),
        "payments_staging_removed": ev(
            "0.5",
            "service",
            "removed",
            "payments",
            s(200),
            {"environment": {"id": "staging"}},
            source="/cd",
        ),
        "checkout_deployed": ev(
            "0.5",
            "service",
            "deployed",
            "checkout",
            s(1500),
            {"environment": {"id": "prod", "source": "/k8s"}, "artifactId": AA},
            source="/cd",
        ),
        "checkout_rolledback": ev(
            "0.4",
            "service",
            "rolledback",
            "checkout",
            s(5000),
            {"environment": "prod", "artifactId": "pkg:oci/checkout@sha256:99"},
            source="/cd",
        ),
        # Incidents: resolved (0.5), and reported only, with plain-string references (0.4).
        "inc1_detected": ev(
            "0.5", "incident", "detected", "inc-1", s(2000), incident, source="/monitoring"
        ),
        "inc1_reported": ev(
            "0.5",
            "incident",
            "reported",
            "inc-1",
            s(2100),
            {**incident, "ticketURI": "https://jira/T-1"},
            source="/monitoring",
        ),
        "inc1_resolved": ev(
            "0.5",
            "incident",
            "resolved",
            "inc-1",
            s(5600),
            {**incident, "description": "Rolled back"},
            source="/monitoring",
        ),
        "inc2_reported": ev(
            "0.4",
            "incident",
            "reported",
            "inc-2",
            s(3000),
            {"environment": "prod", "service": "payments", "ticketURI": "https://jira/T-2"},
            source="/monitoring",
        ),
        # A ticket, updated then closed.
        "t1_created": ev("0.5", "ticket", "created", "T-1", s(2200), ticket, source="/jira"),
        "t1_updated": ev(
            "0.5",
            "ticket",
            "updated",
            "T-1",
            s(3000),
            {**ticket, "assignees": ["bob", "carol"], "updatedBy": "carol"},
            source="/jira",
        ),
        "t1_closed": ev(
            "0.5",
            "ticket",
            "closed",
            "T-1",
            s(6000),
            {
                **ticket,
                "assignees": ["bob", "carol"],
                "updatedBy": "bob",
                "resolution": "completed",
            },
            source="/jira",
        ),
    }


def payload(doc: Doc) -> Doc:
    """What a view shows as last_payload: the CDEvent (unwrapped from a CloudEvent)."""
    return doc["data"] if "specversion" in doc else doc


def workday_expected(d: dict[str, Doc]) -> dict[str, list[dict[str, Any]]]:
    def run(**fields: Any) -> dict[str, Any]:
        return {"source": "/ci", **fields}

    def deployment(name: str, environment: str, artifact: str | None) -> dict[str, Any]:
        context, subject = d[name]["context"], d[name]["subject"]
        return {
            "time": datetime.fromisoformat(context["timestamp"]),
            "environment": environment,
            "service": subject["id"],
            "artifact_id": artifact,
            "action": context["type"].split(".")[3],
            "event_id": context["id"],
            "event_source": "/cd",
            "event_type": context["type"],
        }

    never = None
    return {
        "pipeline_runs": [
            run(
                run_id="1842",
                time=s(0),
                pipeline_name="checkout",
                status="finished",
                outcome="success",
                queued_at=s(0),
                started_at=s(30),
                finished_at=s(330),
                duration_s=300.0,
                queue_s=30.0,
                url="https://ci/1842",
                errors=None,
                last_event_at=s(330),
                events=3,
                last_payload=payload(d["p1842_finished"]),
            ),
            # Started, never finished: running, with no end or duration made up.
            run(
                run_id="1843",
                time=s(60),
                pipeline_name="checkout",
                status="running",
                outcome=None,
                queued_at=s(60),
                started_at=s(90),
                finished_at=never,
                duration_s=None,
                queue_s=30.0,
                url="https://ci/1843",
                errors=None,
                last_event_at=s(90),
                events=2,
                last_payload=d["p1843_started"],
            ),
            # Only its finished event arrived: finished, with no start or duration made up.
            run(
                run_id="1844",
                time=s(400),
                pipeline_name="nightly",
                status="finished",
                outcome="failure",
                queued_at=None,
                started_at=None,
                finished_at=s(400),
                duration_s=None,
                queue_s=None,
                url=None,
                errors="tests failed",
                last_event_at=s(400),
                events=1,
                last_payload=d["p1844_finished"],
            ),
        ],
        "task_runs": [
            run(
                run_id="compile-1842",
                time=s(35),
                task_name="compile",
                pipeline_run_id="1842",
                status="finished",
                outcome="success",
                started_at=s(35),
                finished_at=s(95),
                duration_s=60.0,
                url=None,
                errors=None,
                last_event_at=s(95),
                events=2,
                last_payload=d["compile_finished"],
            ),
            run(
                run_id="test-1842",
                time=s(100),
                task_name="test",
                pipeline_run_id="1842",
                status="finished",
                outcome="failure",
                started_at=s(100),
                finished_at=s(320),
                duration_s=220.0,
                url="https://ci/1842/test",
                errors="3 failed",
                last_event_at=s(320),
                events=2,
                last_payload=d["test_finished"],
            ),
        ],
        "builds": [
            run(
                build_id="b-77",
                time=s(31),
                status="finished",
                queued_at=s(31),
                started_at=s(36),
                finished_at=s(296),
                duration_s=260.0,
                queue_s=5.0,
                artifact_id=AA,
                last_event_at=s(296),
                events=3,
                last_payload=d["build_finished"],
            ),
        ],
        "test_case_runs": [
            # CDEvents 0.3: the subject is the test case; no outcome in that version.
            run(
                run_id="checkout-smoke",
                time=s(200),
                test_case_id="checkout-smoke",
                test_case_name=None,
                test_case_type=None,
                test_case_version=None,
                url=None,
                test_suite_run_id=None,
                environment=None,
                status="finished",
                outcome=None,
                reason=None,
                severity=None,
                queued_at=s(200),
                started_at=s(201),
                finished_at=s(211),
                skipped_at=None,
                duration_s=10.0,
                queue_s=1.0,
                last_event_at=s(211),
                events=3,
                last_payload=d["smoke_finished"],
            ),
            run(
                run_id="tc-1",
                time=s(111),
                test_case_id="login",
                test_case_name="Login",
                test_case_type="unit",
                test_case_version="1",
                url="https://t/l",
                test_suite_run_id="suite-9",
                environment="ci",
                status="finished",
                outcome="success",
                reason=None,
                severity=None,
                queued_at=s(111),
                started_at=s(112),
                finished_at=s(115),
                skipped_at=None,
                duration_s=3.0,
                queue_s=1.0,
                last_event_at=s(115),
                events=3,
                last_payload=d["tc1_finished"],
            ),
            # CDEvents 0.4: outcome "fail", environment as a plain string.
            run(
                run_id="tc-2",
                time=s(116),
                test_case_id="logout",
                test_case_name="Logout",
                test_case_type="unit",
                test_case_version=None,
                url=None,
                test_suite_run_id=None,
                environment="ci",
                status="finished",
                outcome="failure",
                reason="assert 1 == 2",
                severity="high",
                queued_at=None,
                started_at=s(116),
                finished_at=s(121),
                skipped_at=None,
                duration_s=5.0,
                queue_s=None,
                last_event_at=s(121),
                events=2,
                last_payload=d["tc2_finished"],
            ),
            run(
                run_id="tc-3",
                time=s(122),
                test_case_id="slow",
                test_case_name=None,
                test_case_type=None,
                test_case_version=None,
                url=None,
                test_suite_run_id=None,
                environment=None,
                status="skipped",
                outcome=None,
                reason="flaky",
                severity=None,
                queued_at=None,
                started_at=None,
                finished_at=None,
                skipped_at=s(122),
                duration_s=None,
                queue_s=None,
                last_event_at=s(122),
                events=1,
                last_payload=d["tc3_skipped"],
            ),
        ],
        "test_suite_runs": [
            run(
                run_id="integration",
                time=s(120),
                test_suite_id="integration",
                test_suite_name=None,
                test_suite_version=None,
                url=None,
                environment=None,
                status="finished",
                outcome=None,
                reason=None,
                severity=None,
                queued_at=None,
                started_at=s(120),
                finished_at=s(300),
                duration_s=180.0,
                queue_s=None,
                last_event_at=s(300),
                events=2,
                last_payload=d["integration_finished"],
            ),
            # 0.4: testSuite.url when queued, .uri when started: the newer object wins.
            run(
                run_id="suite-10",
                time=s(130),
                test_suite_id="e2e",
                test_suite_name=None,
                test_suite_version=None,
                url="https://tests/e2e",
                environment="ci",
                status="running",
                outcome=None,
                reason=None,
                severity=None,
                queued_at=s(130),
                started_at=s(140),
                finished_at=None,
                duration_s=None,
                queue_s=10.0,
                last_event_at=s(140),
                events=2,
                last_payload=d["suite10_started"],
            ),
            run(
                run_id="suite-9",
                time=s(100),
                test_suite_id="unit",
                test_suite_name="Unit tests",
                test_suite_version="2",
                url="https://tests/unit",
                environment="ci",
                status="finished",
                outcome="failure",
                reason="1 test failed",
                severity="high",
                queued_at=s(100),
                started_at=s(110),
                finished_at=s(310),
                duration_s=200.0,
                queue_s=10.0,
                last_event_at=s(310),
                events=3,
                last_payload=d["suite9_finished"],
            ),
        ],
        "artifacts": [
            # Downloaded after publication: still published (downloaded ranks as published).
            run(
                artifact_id=AA,
                time=s(297),
                status="published",
                packaged_at=s(297),
                signed_at=s(298),
                published_at=s(299),
                downloaded_at=s(1000),
                deleted_at=None,
                change_id="pr-12",
                change_source="/scm/checkout",
                sbom_uri="https://sbom/aa",
                signature="sig",
                last_event_at=s(1000),
                events=4,
                last_payload=d["aa_downloaded"],
            ),
            run(
                artifact_id="pkg:oci/old@sha256:bb",
                time=s(10),
                status="deleted",
                packaged_at=s(10),
                signed_at=None,
                published_at=None,
                downloaded_at=None,
                deleted_at=s(20),
                change_id=None,
                change_source=None,
                sbom_uri=None,
                signature=None,
                last_event_at=s(20),
                events=2,
                last_payload=d["bb_deleted"],
            ),
        ],
        "changes": [
            {
                "change_id": "pr-12",
                "source": "/scm/checkout",
                "time": s(-3600),
                "repository": "checkout",
                "status": "merged",
                "description": "Add login",
                "created_at": s(-3600),
                "updated_at": s(-1800),
                "reviewed_at": s(-900),
                "merged_at": s(-600),
                "abandoned_at": None,
                "last_event_at": s(-600),
                "events": 4,
                "last_payload": d["pr12_merged"],
            },
            {
                "change_id": "pr-13",
                "source": "/scm/checkout",
                "time": s(-500),
                "repository": "checkout",
                "status": "abandoned",
                "description": "Try",
                "created_at": s(-500),
                "updated_at": None,
                "reviewed_at": None,
                "merged_at": None,
                "abandoned_at": s(-100),
                "last_event_at": s(-100),
                "events": 2,
                "last_payload": d["pr13_abandoned"],
            },
        ],
        "branches": [
            {
                "branch_id": "feature/login",
                "source": "/scm",
                "time": s(-7200),
                "repository": "checkout",
                "status": "deleted",
                "created_at": s(-7200),
                "deleted_at": s(-500),
                "last_event_at": s(-500),
                "events": 2,
                "last_payload": d["login_branch_deleted"],
            },
            {
                "branch_id": "main",
                "source": "/scm",
                "time": s(-86400),
                "repository": "checkout",
                "status": "active",
                "created_at": s(-86400),
                "deleted_at": None,
                "last_event_at": s(-86400),
                "events": 1,
                "last_payload": d["main_branch_created"],
            },
        ],
        "repositories": [
            # url of 0.4 and uri of 0.5: the uri; viewUrl kept from the older event.
            {
                "repository_id": "checkout",
                "source": "/scm",
                "time": s(-30 * 86400),
                "name": "checkout",
                "owner": "shop",
                "url": "https://git/shop/checkout.git",
                "view_url": "https://git/shop/checkout/view",
                "status": "active",
                "created_at": s(-30 * 86400),
                "modified_at": s(-86400),
                "deleted_at": None,
                "last_event_at": s(-86400),
                "events": 2,
                "last_payload": d["repo_modified"],
            },
        ],
        "environments": [
            {
                "environment_id": "prod",
                "source": "/k8s",
                "time": s(-10 * 86400),
                "name": "production",
                "url": "https://prod.example/v2",
                "status": "active",
                "created_at": s(-10 * 86400),
                "modified_at": s(-3600),
                "deleted_at": None,
                "last_event_at": s(-3600),
                "events": 2,
                "last_payload": d["prod_modified"],
            },
            {
                "environment_id": "staging",
                "source": "/k8s",
                "time": s(-5 * 86400),
                "name": "staging",
                "url": None,
                "status": "deleted",
                "created_at": s(-5 * 86400),
                "modified_at": None,
                "deleted_at": s(-60),
                "last_event_at": s(-60),
                "events": 2,
                "last_payload": d["staging_deleted"],
            },
        ],
        "incidents": [
            {
                "incident_id": "inc-1",
                "source": "/monitoring",
                "time": s(2000),
                "environment": "prod",
                "service": "checkout",
                "artifact_id": AA,
                "description": "Rolled back",
                "ticket_url": "https://jira/T-1",
                "status": "resolved",
                "detected_at": s(2000),
                "reported_at": s(2100),
                "resolved_at": s(5600),
                "time_to_restore_s": 3600.0,
                "last_event_at": s(5600),
                "events": 3,
                "last_payload": d["inc1_resolved"],
            },
            {
                "incident_id": "inc-2",
                "source": "/monitoring",
                "time": s(3000),
                "environment": "prod",
                "service": "payments",
                "artifact_id": None,
                "description": None,
                "ticket_url": "https://jira/T-2",
                "status": "open",
                "detected_at": None,
                "reported_at": s(3000),
                "resolved_at": None,
                "time_to_restore_s": None,
                "last_event_at": s(3000),
                "events": 1,
                "last_payload": d["inc2_reported"],
            },
        ],
        "tickets": [
            {
                "ticket_id": "T-1",
                "source": "/jira",
                "time": s(2200),
                "summary": "Latency in checkout",
                "ticket_type": "bug",
                "priority": "high",
                "group_name": "sre",
                "creator": "alice",
                "assignees": ["bob", "carol"],
                "labels": ["incident"],
                "milestone": "m1",
                "resolution": "completed",
                "updated_by": "bob",
                "url": "https://jira/T-1",
                "status": "closed",
                "created_at": s(2200),
                "updated_at": s(3000),
                "closed_at": s(6000),
                "last_event_at": s(6000),
                "events": 3,
                "last_payload": d["t1_closed"],
            },
        ],
        "deployments": [
            deployment("payments_upgraded", "prod", "pkg:oci/payments@sha256:cc"),
            deployment("payments_staging_deployed", "staging", "pkg:oci/payments@sha256:cd"),
            deployment("payments_staging_removed", "staging", None),
            deployment("checkout_deployed", "prod", AA),
            deployment("checkout_rolledback", "prod", "pkg:oci/checkout@sha256:99"),
        ],
        "service_state": [
            {
                "environment": "prod",
                "service": "checkout",
                "artifact_id": "pkg:oci/checkout@sha256:99",
                "state": "running",
                "last_action": "rolledback",
                "since": s(5000),
            },
            {
                "environment": "prod",
                "service": "payments",
                "artifact_id": "pkg:oci/payments@sha256:cc",
                "state": "running",
                "last_action": "upgraded",
                "since": s(50),
            },
            {
                "environment": "staging",
                "service": "payments",
                "artifact_id": None,
                "state": "removed",
                "last_action": "removed",
                "since": s(200),
            },
        ],
    }


def event_time(doc: Doc) -> str:
    return str(payload(doc)["context"]["timestamp"])


def in_time_order(docs: list[Doc]) -> list[list[Doc]]:
    return [sorted(docs, key=event_time)]


def latest_first_one_by_one(docs: list[Doc]) -> list[list[Doc]]:
    # Every finished before its started, every rollback before the deployment it follows.
    return [[doc] for doc in sorted(docs, key=event_time, reverse=True)]


def shuffled_with_replays(docs: list[Doc]) -> list[list[Doc]]:
    shuffled = random.Random(5).sample(docs, len(docs))
    batches = [shuffled[i : i + 7] for i in range(0, len(shuffled), 7)]
    for n, doc in enumerate(shuffled[::4]):  # a quarter of the events come again later
        batches[(n * 3 + 2) % len(batches)].append(doc)
    return [*batches, docs]  # and then everything once more


@pytest.mark.parametrize(
    "order",
    [in_time_order, latest_first_one_by_one, shuffled_with_replays],
    ids=lambda f: f.__name__,
)
def test_a_workday_in_any_order_gives_the_same_rows(
    db: Conn, database_url: str, order: Any
) -> None:
    docs = workday()
    results = ingest(database_url, order(list(docs.values())))
    assert sum(r.stored for r in results) == len(docs)
    assert snapshot(db) == workday_expected(docs)


def test_large_batches_out_of_order(db: Conn, database_url: str) -> None:
    # A thousand runs: every started and finished event in one batch, then every queued event
    # with half of the others again. (Catches a fold whose plan grows with the batch squared:
    # the batch would not finish.)
    runs = range(1000)

    def run_events(i: int) -> dict[str, Doc]:
        content, run_id = {"pipelineName": f"p{i % 10}"}, f"r{i}"
        return {
            "queued": cdevent("0.5", "pipelinerun", "queued", run_id, s(i), content),
            "started": cdevent("0.5", "pipelinerun", "started", run_id, s(i + 10 + i % 7), content),
            "finished": cdevent(
                "0.5", "pipelinerun", "finished", run_id, s(i + 100 + i % 13),
                {**content, "outcome": "failure" if i % 5 == 0 else "success"},
            ),
        }  # fmt: skip

    events = [run_events(i) for i in runs]
    first = [e[p] for e in events for p in ("finished", "started")]
    second = [e["queued"] for e in events] + first[::2]
    results = ingest(database_url, [random.Random(1).sample(first, len(first)), second])
    assert [(r.stored, len(r.duplicates)) for r in results] == [(2000, 0), (1000, 1000)]
    [summary] = rows(
        db,
        "SELECT count(*) AS runs, count(*) FILTER (WHERE status = 'finished') AS finished,"
        " count(*) FILTER (WHERE outcome = 'failure') AS failed, sum(queue_s) AS queue_s,"
        " sum(duration_s) AS duration_s, sum(events) AS events, min(time) AS first"
        " FROM api.pipeline_runs",
    )
    assert summary == {
        "runs": 1000,
        "finished": 1000,
        "failed": 200,
        "queue_s": float(sum(10 + i % 7 for i in runs)),
        "duration_s": float(sum(90 + i % 13 - i % 7 for i in runs)),
        "events": 3000,
        "first": s(0),
    }


def test_the_writer_ingests_with_sql_and_the_reader_sees_the_run(db: Conn) -> None:
    # Any client (psql, a script) calling collector.ingest as collector_writer keeps the
    # lifecycle state; collector_reader reads it through the view, nothing else.
    doc = cdevent("0.5", "pipelinerun", "started", "sql-1", s(0), {"pipelineName": "psql"})
    call = (
        "SELECT stored FROM collector.ingest(ARRAY[%(id)s], ARRAY['/ci'], ARRAY[%(type)s],"
        " ARRAY[%(time)s::timestamptz], ARRAY['cdevents'], ARRAY['sql-1'], ARRAY['pipelinerun'],"
        " ARRAY['started'], ARRAY['0.3.0'], ARRAY[%(payload)s], ARRAY[NULL], ARRAY[now()],"
        " ARRAY['psql'])"
    )
    params = {
        "id": doc["context"]["id"],
        "type": doc["context"]["type"],
        "time": s(0),
        "payload": json.dumps(doc),
    }
    db.execute("SET ROLE collector_writer")
    assert db.execute(call, params).fetchone() == (1,)
    db.execute("SET ROLE collector_reader")
    assert rows(db, "SELECT run_id, pipeline_name, status, started_at FROM api.pipeline_runs") == [
        {"run_id": "sql-1", "pipeline_name": "psql", "status": "running", "started_at": s(0)}
    ]
    db.execute("RESET ROLE")
