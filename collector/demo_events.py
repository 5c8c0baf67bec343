"""Realistic CDEvents 0.4.1 traffic, deterministic from a seed: for benchmarks and demos.

A few hundred services go through delivery flows (change merged → pipeline run → tasks,
build, tests → artifact → deployments, now and then a rollback or an incident), producing
~1 KB events with unique ids, timestamps within the last few days, sorted by time.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SPEC_VERSION = "0.4.1"
TYPE_VERSION = "0.2.0"
ORG = "acme"

_DOMAINS = (
    "payments", "checkout", "cart", "catalog", "search", "pricing", "inventory", "orders",
    "shipping", "billing", "invoices", "accounts", "identity", "auth", "profile", "reviews",
    "recommendations", "notifications", "email", "sms", "ledger", "fraud", "risk", "loyalty",
    "coupons", "media", "images", "geo", "tax", "returns", "warehouse", "reporting",
    "analytics", "audit", "feature-flags", "gateway", "scheduler", "webhooks",
)  # fmt: skip
_KINDS = ("api", "service", "worker", "web", "consumer", "sync", "admin", "grpc", "batch")
_TEAMS = (
    "team-atlas", "team-borealis", "team-comet", "team-delta", "team-ember", "team-fjord",
    "team-granite", "team-harbor", "team-iris", "team-juniper", "team-kestrel", "team-lumen",
)  # fmt: skip
_LANGUAGES = ("go", "java", "kotlin", "python", "typescript", "rust", "csharp")
_PEOPLE = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yuki",
)  # fmt: skip
ENVIRONMENTS = (
    "dev", "qa", "staging", "perf", "prod-eu-west-1", "prod-us-east-1", "prod-ap-southeast-2",
)  # fmt: skip
_TASKS = ("checkout", "lint", "unit-tests", "build-image", "scan-image", "integration-tests")
_TEST_TYPES = ("unit", "integration", "functional", "e2e", "security", "performance")
_RUNNERS = ("ubuntu-22.04", "ubuntu-24.04", "self-hosted-x64", "self-hosted-arm64")


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    team: str
    language: str
    ci: str  # tekton | jenkins | github
    cluster: int

    @property
    def repository(self) -> str:
        return f"{ORG}/{self.name}"

    @property
    def repository_url(self) -> str:
        return f"https://github.com/{ORG}/{self.name}"

    @property
    def ci_source(self) -> str:
        if self.ci == "tekton":
            return f"/tekton/ci-cluster-{self.cluster}/namespaces/{self.team}"
        if self.ci == "jenkins":
            return f"https://jenkins-{self.cluster}.{ORG}.internal/job/{self.name}"
        return f"https://github.com/{ORG}/{self.name}/actions"

    def image(self, version: str) -> str:
        return f"registry.{ORG}.internal/{self.team}/{self.name}:{version}"


def services(seed: int, count: int = 300) -> list[Service]:
    """`count` services, deterministic from `seed` (names from a fixed vocabulary)."""
    rng = random.Random(f"services-{seed}")  # noqa: S311 - reproducible data, not secrets
    names = [f"{d}-{k}" for d in _DOMAINS for k in _KINDS]
    rng.shuffle(names)
    return [
        Service(
            name=name,
            team=rng.choice(_TEAMS),
            language=rng.choice(_LANGUAGES),
            ci=rng.choices(("tekton", "jenkins", "github"), weights=(5, 2, 3))[0],
            cluster=rng.randint(1, 4),
        )
        for name in names[:count]
    ]


def generate(
    n: int, seed: int = 1, now: datetime | None = None, days: float = 3.0
) -> list[dict[str, Any]]:
    """`n` CDEvents (as JSON-ready dicts) sorted by timestamp, all within `days` before `now`.

    The same seed and `now` give the same events; ids are unique.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    flow = _Flow(rng, services(seed), now - timedelta(days=days), now)
    events: list[tuple[datetime, dict[str, Any]]] = []
    while len(events) < n:
        events.extend(flow.delivery())
    del events[n:]
    events.sort(key=lambda pair: pair[0])
    return [doc for _, doc in events]


class _Flow:
    """One service's way from a merged change to production, as CDEvents."""

    def __init__(
        self, rng: random.Random, fleet: list[Service], start: datetime, end: datetime
    ) -> None:
        self.rng = rng
        self.fleet = fleet
        self.start = start
        self.span_s = (end - start).total_seconds() - 4 * 3600  # flows end before `end`
        self.versions: dict[str, tuple[int, int, int]] = {}
        self.deployed: set[tuple[str, str]] = set()
        self.counter = 1000
        self.events: list[tuple[datetime, dict[str, Any]]] = []
        self.at = start

    # -- building blocks -----------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def _next_number(self) -> int:
        self.counter += 1
        return self.counter

    def _tick(self, low: float, high: float) -> datetime:
        self.at += timedelta(seconds=self.rng.uniform(low, high))
        return self.at

    def _emit(
        self,
        kind: str,
        source: str,
        subject: dict[str, Any],
        custom: dict[str, Any],
        chain: str,
        parent: str | None,
        at: datetime,
    ) -> str:
        event_id = self._uuid()
        context: dict[str, Any] = {
            "version": SPEC_VERSION,
            "id": event_id,
            "chainId": chain,
            "source": source,
            "type": f"dev.cdevents.{kind}.{TYPE_VERSION}",
            "timestamp": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        }
        if parent is not None:
            context["links"] = [
                {"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": parent}}
            ]
        doc = {
            "context": context,
            "subject": subject,
            "customData": custom,
            "customDataContentType": "application/json",
        }
        self.events.append((at, doc))
        return event_id

    # -- one delivery --------------------------------------------------------------------

    def delivery(self) -> list[tuple[datetime, dict[str, Any]]]:
        rng = self.rng
        self.events = []
        service = rng.choice(self.fleet)
        self.at = self.start + timedelta(seconds=rng.uniform(0, self.span_s))
        chain = self._uuid()
        commit = self._sha()
        author = rng.choice(_PEOPLE)
        major, minor, patch = self.versions.get(service.name, (1, rng.randint(0, 30), 0))
        version = (major, minor + 1, 0) if rng.random() < 0.2 else (major, minor, patch + 1)
        self.versions[service.name] = version
        tag = "{}.{}.{}".format(*version)
        custom = {
            "team": service.team,
            "repository": service.repository,
            "branch": "main",
            "commit": commit,
            "author": f"{author}@{ORG}.example",
            "language": service.language,
            "labels": {
                "tier": rng.choice(("frontend", "backend", "data")),
                "cost-center": str(rng.randint(1000, 1040)),
            },
        }

        # The change.
        change = f"{service.repository}/pull/{self._next_number()}"
        github = f"https://github.com/{ORG}/{service.name}"
        repo_ref = {"id": service.repository, "source": "https://github.com"}
        merged = self._emit(
            "change.merged",
            github,
            {"id": change, "source": github, "type": "change", "content": {"repository": repo_ref}},
            {
                **custom,
                "title": f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}",
                "reviewers": [f"{p}@{ORG}.example" for p in rng.sample(_PEOPLE, 2)],
            },
            chain,
            None,
            self._tick(0, 60),
        )

        # The pipeline run and its tasks.
        ci = service.ci_source
        run_id = f"{service.name}-run-{self._next_number()}"
        run_url = f"https://ci.{ORG}.internal/{service.ci}/{service.name}/runs/{run_id}"
        pipeline = f"{service.name}-{rng.choice(('ci', 'build-and-deploy', 'release'))}"
        runner = rng.choice(_RUNNERS)
        run_custom = {**custom, "runner": runner, "trigger": "push", "attempt": 1}
        run_subject = {"id": run_id, "source": ci, "type": "pipelineRun"}
        queued = self._emit(
            "pipelinerun.queued",
            ci,
            {**run_subject, "content": {"pipelineName": pipeline, "url": run_url}},
            run_custom,
            chain,
            merged,
            self._tick(1, 30),
        )
        started = self._emit(
            "pipelinerun.started",
            ci,
            {**run_subject, "content": {"pipelineName": pipeline, "url": run_url}},
            {**run_custom, "queuedMs": rng.randint(200, 90_000)},
            chain,
            queued,
            self._tick(1, 120),
        )
        failed = rng.random() < 0.12
        failing_task = rng.randrange(len(_TASKS)) if failed else -1
        artifact = f"pkg:oci/{service.name}@sha256%3A{rng.getrandbits(256):064x}"
        for index, task in enumerate(_TASKS):
            task_id = f"{run_id}-{task}"
            task_ref = {"id": run_id, "source": ci}
            task_url = f"{run_url}/tasks/{task}"
            task_subject = {"id": task_id, "source": ci, "type": "taskRun"}
            task_started = self._emit(
                "taskrun.started",
                ci,
                {
                    **task_subject,
                    "content": {"taskName": task, "url": task_url, "pipelineRun": task_ref},
                },
                {**run_custom, "step": index + 1},
                chain,
                started,
                self._tick(0.5, 10),
            )
            if task == "build-image":
                self._build(service, ci, artifact, run_custom, chain, task_started)
            if task in ("unit-tests", "integration-tests"):
                self._tests(service, ci, task, run_id, run_custom, chain, task_started, failed)
            outcome = "failure" if index == failing_task else "success"
            content: dict[str, Any] = {
                "taskName": task,
                "url": task_url,
                "pipelineRun": task_ref,
                "outcome": outcome,
            }
            if outcome == "failure":
                content["errors"] = f"step {task} exited with code {rng.choice((1, 2, 137))}"
            self._emit(
                "taskrun.finished",
                ci,
                {**task_subject, "content": content},
                {**run_custom, "step": index + 1, "durationMs": rng.randint(800, 600_000)},
                chain,
                task_started,
                self._tick(5, 300),
            )
            if index == failing_task:
                break
        content = {"pipelineName": pipeline, "url": run_url}
        content["outcome"] = "failure" if failed else "success"
        if failed:
            content["errors"] = f"task {_TASKS[failing_task]} failed"
        finished = self._emit(
            "pipelinerun.finished",
            ci,
            {**run_subject, "content": content},
            {**run_custom, "durationMs": rng.randint(60_000, 3_600_000)},
            chain,
            started,
            self._tick(1, 20),
        )
        if failed:
            return self.events

        # The artifact, then deployments up the environments.
        registry = f"https://registry.{ORG}.internal/{service.team}/{service.name}"
        self._emit(
            "artifact.published",
            registry,
            {
                "id": artifact,
                "source": registry,
                "type": "artifact",
                "content": {
                    "sbom": {"uri": f"{registry}/sbom/{tag}.spdx.json"},
                    "user": f"{service.ci}-bot",
                },
            },
            {**custom, "version": tag, "image": service.image(tag)},
            chain,
            finished,
            self._tick(1, 30),
        )
        targets = ["dev", "staging"]
        if rng.random() < 0.6:
            targets += rng.sample(ENVIRONMENTS[4:], rng.randint(1, 3))
        elif rng.random() < 0.3:
            targets.append(rng.choice(("qa", "perf")))
        for environment in targets:
            if not self._deploy(service, environment, artifact, tag, custom, chain, finished):
                break
        return self.events

    def _build(
        self,
        service: Service,
        ci: str,
        artifact: str,
        custom: dict[str, Any],
        chain: str,
        parent: str,
    ) -> None:
        build_id = f"{service.name}-build-{self._next_number()}"
        subject = {"id": build_id, "source": ci, "type": "build"}
        extra = {**custom, "dockerfile": "Dockerfile", "platforms": ["linux/amd64", "linux/arm64"]}
        queued = self._emit(
            "build.queued", ci, {**subject, "content": {}}, extra, chain, parent, self._tick(0.2, 5)
        )
        started = self._emit(
            "build.started",
            ci,
            {**subject, "content": {}},
            extra,
            chain,
            queued,
            self._tick(0.5, 20),
        )
        self._emit(
            "build.finished",
            ci,
            {**subject, "content": {"artifactId": artifact}},
            {
                **extra,
                "durationMs": self.rng.randint(20_000, 900_000),
                "cacheHitRatio": round(self.rng.random(), 3),
            },
            chain,
            started,
            self._tick(20, 600),
        )

    def _tests(
        self,
        service: Service,
        ci: str,
        task: str,
        run_id: str,
        custom: dict[str, Any],
        chain: str,
        parent: str,
        failing: bool,
    ) -> None:
        rng = self.rng
        environment = {"id": "ci", "source": ci}
        suite = {"id": f"{run_id}-{task}", "source": ci}
        for _ in range(rng.randint(2, 4)):
            test = rng.choice(_THINGS).replace(" ", "_")
            kind = "unit" if task == "unit-tests" else rng.choice(_TEST_TYPES[1:])
            case = {
                "id": f"{service.name}/{kind}/test_{test}",
                "name": f"test_{test}",
                "type": kind,
                "version": "1",
                "uri": f"{service.repository_url}/blob/main/tests/test_{test}",
            }
            run = f"{run_id}-{task}-{self._next_number()}"
            subject = {"id": run, "source": ci, "type": "testCaseRun"}
            started = self._emit(
                "testcaserun.started",
                ci,
                {
                    **subject,
                    "content": {
                        "environment": environment,
                        "testSuiteRun": suite,
                        "testCase": case,
                        "trigger": {"type": "pipeline"},
                    },
                },
                custom,
                chain,
                parent,
                self._tick(0.1, 3),
            )
            outcome = "fail" if failing and rng.random() < 0.5 else "pass"
            content: dict[str, Any] = {
                "outcome": outcome,
                "environment": environment,
                "testSuiteRun": suite,
                "testCase": case,
            }
            if outcome == "fail":
                content["severity"] = rng.choice(("low", "medium", "high", "critical"))
                content["reason"] = f"AssertionError: expected {rng.randint(1, 99)} got 0"
            self._emit(
                "testcaserun.finished",
                ci,
                {**subject, "content": content},
                {**custom, "durationMs": rng.randint(5, 120_000)},
                chain,
                started,
                self._tick(0.1, 60),
            )

    def _deploy(
        self,
        service: Service,
        environment: str,
        artifact: str,
        tag: str,
        custom: dict[str, Any],
        chain: str,
        parent: str,
    ) -> bool:
        """Deploy to one environment; False when it went wrong and the rollout stops."""
        rng = self.rng
        cd = f"https://argocd.{ORG}.internal/applications/{service.name}-{environment}"
        env_ref = {"id": environment, "source": f"https://argocd.{ORG}.internal"}
        subject = {"id": f"{service.name}", "source": cd, "type": "service"}
        first = (service.name, environment) not in self.deployed
        self.deployed.add((service.name, environment))
        deploy_custom = {
            **custom,
            "version": tag,
            "strategy": rng.choice(("rolling", "blue-green", "canary")),
            "replicas": rng.randint(2, 24),
        }
        deployed = self._emit(
            "service.deployed" if first else "service.upgraded",
            cd,
            {**subject, "content": {"environment": env_ref, "artifactId": artifact}},
            deploy_custom,
            chain,
            parent,
            self._tick(30, 1800),
        )
        roll = rng.random()
        if roll < 0.03 and not first:
            self._emit(
                "service.rolledback",
                cd,
                {**subject, "content": {"environment": env_ref, "artifactId": artifact}},
                {**deploy_custom, "reason": "health checks failed"},
                chain,
                deployed,
                self._tick(60, 900),
            )
            return False
        if roll < 0.06 and environment.startswith("prod"):
            monitor = f"https://alertmanager.{ORG}.internal/{environment}"
            incident = f"INC-{self._next_number()}"
            content = {
                "description": f"{service.name}: {rng.choice(_SYMPTOMS)}",
                "environment": env_ref,
                "service": {"id": service.name, "source": cd},
                "artifactId": artifact,
            }
            alert = {
                **custom,
                "severity": rng.choice(("sev1", "sev2", "sev3")),
                "runbook": f"https://runbooks.{ORG}.internal/{service.name}",
            }
            detected = self._emit(
                "incident.detected",
                monitor,
                {"id": incident, "source": monitor, "type": "incident", "content": content},
                alert,
                chain,
                deployed,
                self._tick(60, 3600),
            )
            self._emit(
                "incident.resolved",
                monitor,
                {"id": incident, "source": monitor, "type": "incident", "content": content},
                {**alert, "timeToResolveMs": rng.randint(60_000, 7_200_000)},
                chain,
                detected,
                self._tick(300, 7200),
            )
            return False
        return True


_VERBS = ("fix", "add", "refactor", "remove", "speed up", "document", "harden", "upgrade")
_THINGS = (
    "retry logic", "connection pool", "cache invalidation", "rate limiter", "schema migration",
    "currency rounding", "pagination", "auth middleware", "metrics endpoint", "config loader",
    "error mapping", "batch export", "webhook signature", "timezone handling", "feature flag",
)  # fmt: skip
_SYMPTOMS = (
    "error rate above 5% for 10m", "p99 latency above 2s", "pods crash looping",
    "queue lag above 100k messages", "5xx spike on /checkout", "memory usage above 95%",
)  # fmt: skip

# Every type the generator produces.
TYPES: tuple[str, ...] = tuple(
    f"dev.cdevents.{kind}.{TYPE_VERSION}"
    for kind in (
        "change.merged", "pipelinerun.queued", "pipelinerun.started", "pipelinerun.finished",
        "taskrun.started", "taskrun.finished", "build.queued", "build.started", "build.finished",
        "testcaserun.started", "testcaserun.finished", "artifact.published", "service.deployed",
        "service.upgraded", "service.rolledback", "incident.detected", "incident.resolved",
    )
)  # fmt: skip


def payloads(n: int, seed: int = 1, now: datetime | None = None) -> list[bytes]:
    """The same events as `generate`, each as compact JSON bytes (one message or line each)."""
    return [orjson.dumps(doc) for doc in generate(n, seed=seed, now=now)]
