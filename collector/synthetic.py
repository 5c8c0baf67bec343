"""Realistic, deterministic CDEvents for benchmarks and tests.

A seeded walk through CI/CD activity — changes, pipeline and task runs, builds, artifacts,
test runs, deployments, incidents — across teams and repositories. Every event has a unique
id, a timestamp within the hour before `now`, custom data, and is about 1 KB; all are valid
against the CDEvents 0.5.1 schemas (a test checks a sample), so a benchmark never measures
the rejection path by accident.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SPEC_VERSION = "0.5.1"
TEAMS = ("payments", "search", "identity", "platform", "mobile", "data", "checkout", "growth")
REPOS = ("api", "web", "worker", "gateway", "ledger", "indexer", "auth", "sdk", "infra")
ENVIRONMENTS = ("dev", "staging", "production-eu", "production-us")
RUNNERS = ("linux-x64-large", "linux-arm64", "linux-x64-small", "macos-14")
OUTCOMES = ("success", "success", "success", "success", "failure", "error", "cancel")
TASKS = ("checkout", "lint", "unit-tests", "build-image", "scan", "integration-tests", "push")

Content = Callable[[random.Random, dict[str, str]], dict[str, Any]]


def _pipeline(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {"pipelineName": ctx["pipeline"], "uri": f"{ctx['ci']}/runs/{ctx['run']}"}


def _pipeline_finished(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    outcome = rng.choice(OUTCOMES)
    content = {**_pipeline(rng, ctx), "outcome": outcome}
    if outcome != "success":
        content["errors"] = f"step {rng.choice(TASKS)} exited with code {rng.randint(1, 137)}"
    return content


def _taskrun(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {
        "taskName": rng.choice(TASKS),
        "uri": f"{ctx['ci']}/runs/{ctx['run']}/tasks/{rng.randint(1, 40)}",
        "pipelineRun": {"id": ctx["run"], "source": ctx["ci_path"]},
    }


def _taskrun_finished(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {**_taskrun(rng, ctx), "outcome": rng.choice(OUTCOMES)}


def _empty(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {}


def _build_finished(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {"artifactId": ctx["artifact"]}


def _change_created(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {
        "description": f"{rng.choice(('Fix', 'Add', 'Refactor', 'Bump'))} {ctx['repo']} "
        f"{rng.choice(('retry logic', 'metrics', 'dependencies', 'cache', 'validation'))}",
        "repository": {"id": ctx["repo_id"], "source": ctx["scm"]},
    }


def _change_merged(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {"repository": {"id": ctx["repo_id"], "source": ctx["scm"]}}


def _artifact_packaged(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {
        "change": {"id": ctx["change"], "source": ctx["scm"]},
        "sbom": {"uri": f"https://sbom.example.com/{ctx['team']}/{ctx['repo']}.spdx.json"},
    }


def _artifact_published(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {
        "sbom": {"uri": f"https://sbom.example.com/{ctx['team']}/{ctx['repo']}.spdx.json"},
        "user": f"release-bot-{ctx['team']}",
    }


def _service(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {
        "environment": {"id": ctx["environment"], "source": "https://deploy.example.com"},
        "artifactId": ctx["artifact"],
    }


def _testcase_finished(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    outcome = rng.choice(OUTCOMES)
    content: dict[str, Any] = {
        "outcome": outcome,
        "environment": {"id": ctx["environment"], "source": "https://deploy.example.com"},
    }
    if outcome != "success":
        content["severity"] = rng.choice(("low", "medium", "high", "critical"))
        content["reason"] = "assertion failed: expected 200, got 503"
    return content


def _incident(rng: random.Random, ctx: dict[str, str]) -> dict[str, Any]:
    return {
        "description": f"error rate above {rng.randint(1, 9)}% on {ctx['repo']}",
        "environment": {"id": ctx["environment"], "source": "https://deploy.example.com"},
        "service": {"id": f"{ctx['team']}/{ctx['repo']}", "source": "https://deploy.example.com"},
        "artifactId": ctx["artifact"],
    }


# (type, what the subject id is, how the content is made, how often relative to the others)
KINDS: tuple[tuple[str, str, Content, int], ...] = (
    ("dev.cdevents.change.created.0.4.0", "change", _change_created, 3),
    ("dev.cdevents.change.merged.0.3.0", "change", _change_merged, 3),
    ("dev.cdevents.pipelinerun.queued.0.3.0", "run", _pipeline, 5),
    ("dev.cdevents.pipelinerun.started.0.3.0", "run", _pipeline, 5),
    ("dev.cdevents.pipelinerun.finished.0.3.0", "run", _pipeline_finished, 5),
    ("dev.cdevents.taskrun.started.0.3.0", "task", _taskrun, 8),
    ("dev.cdevents.taskrun.finished.0.3.0", "task", _taskrun_finished, 8),
    ("dev.cdevents.build.queued.0.3.0", "build", _empty, 3),
    ("dev.cdevents.build.started.0.3.0", "build", _empty, 3),
    ("dev.cdevents.build.finished.0.3.0", "build", _build_finished, 3),
    ("dev.cdevents.artifact.packaged.0.3.0", "artifact", _artifact_packaged, 2),
    ("dev.cdevents.artifact.published.0.3.0", "artifact", _artifact_published, 2),
    ("dev.cdevents.testcaserun.finished.0.3.0", "test", _testcase_finished, 6),
    ("dev.cdevents.service.deployed.0.3.0", "service", _service, 2),
    ("dev.cdevents.service.upgraded.0.3.0", "service", _service, 2),
    ("dev.cdevents.incident.detected.0.3.0", "incident", _incident, 1),
)
_WEIGHTS = [k[3] for k in KINDS]


def cdevents(count: int, seed: int = 1, now: datetime | None = None) -> Iterator[dict[str, Any]]:
    """`count` CDEvents, the same for the same seed and `now` (default: the current time)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    end = now or datetime.now(UTC)
    for index in range(count):
        event_type, subject_kind, content, _ = rng.choices(KINDS, weights=_WEIGHTS)[0]
        team, repo = rng.choice(TEAMS), rng.choice(REPOS)
        run = rng.randint(1, 99_999)
        ctx = {
            "team": team,
            "repo": repo,
            "repo_id": f"{team}/{repo}",
            "ci": f"https://ci.example.com/{team}/{repo}",
            "ci_path": f"/ci/{team}/{repo}",
            "scm": f"https://git.example.com/{team}/{repo}",
            "pipeline": f"{repo}-{rng.choice(('main', 'release', 'nightly', 'pr'))}",
            "run": f"{repo}-run-{run}",
            "change": f"{team}/{repo}/pull/{rng.randint(1, 9_999)}",
            "artifact": f"pkg:oci/{repo}@sha256:{rng.getrandbits(256):064x}"
            f"?repository_url=registry.example.com/{team}",
            "environment": rng.choice(ENVIRONMENTS),
        }
        subject_id = {
            "change": ctx["change"],
            "run": ctx["run"],
            "task": f"{ctx['run']}-{rng.choice(TASKS)}",
            "build": f"{repo}-build-{run}",
            "artifact": ctx["artifact"],
            "test": f"{repo}/tests/test_{rng.randint(1, 500)}",
            "service": f"{team}/{repo}",
            "incident": f"INC-{rng.randint(1, 99_999)}",
        }[subject_kind]
        when = end - timedelta(seconds=rng.uniform(0, 3600))
        # Unique per (seed, index): the index sits in the low bits of a version-4 UUID.
        event_id = uuid.UUID(int=(rng.getrandbits(80) << 48) | index, version=4)
        yield {
            "context": {
                "specversion": SPEC_VERSION,
                "id": str(event_id),
                "source": f"/ci/{team}/{repo}",
                "type": event_type,
                "timestamp": when.isoformat().replace("+00:00", "Z"),
                "chainId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            },
            "subject": {
                "id": subject_id,
                "source": f"/ci/{team}/{repo}",
                "content": content(rng, ctx),
            },
            "customData": {
                "team": team,
                "repository": ctx["scm"],
                "commit": f"{rng.getrandbits(160):040x}",
                "branch": rng.choice(("main", "release/2.4", f"feature/{rng.randint(1, 999)}")),
                "runner": rng.choice(RUNNERS),
                "durationMs": rng.randint(200, 1_800_000),
                "attempt": rng.choice((1, 1, 1, 2, 3)),
                "labels": rng.sample(
                    ["critical", "backend", "frontend", "security", "flaky", "slow", "canary"],
                    k=3,
                ),
                "steps": [
                    {
                        "name": step,
                        "durationMs": rng.randint(50, 600_000),
                        "cached": rng.random() < 0.3,
                    }
                    for step in rng.sample(TASKS, k=3)
                ],
                "triggeredBy": {
                    "kind": rng.choice(("push", "schedule", "pull_request", "manual")),
                    "user": f"dev{rng.randint(1, 400)}@example.com",
                },
            },
            "customDataContentType": "application/json",
        }


def cdevent_payloads(count: int, seed: int = 1, now: datetime | None = None) -> list[bytes]:
    """The same events as compact JSON bytes."""
    return [orjson.dumps(e) for e in cdevents(count, seed, now)]
