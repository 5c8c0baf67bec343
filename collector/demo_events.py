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
    n: int,
    seed: int = 1,
    now: datetime | None = None,
    days: float = 3.0,
    service_count: int = 300,
) -> list[dict[str, Any]]:
    """`n` CDEvents (as JSON-ready dicts) sorted by timestamp, all within `days` before `now`,
    from a fleet of `service_count` services.

    The same arguments give the same events; ids are unique.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    flow = _Flow(rng, services(seed, service_count), now - timedelta(days=days), now)
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


# -- what happens around the delivery flows ---------------------------------------------------

# Types `complements` adds, with their CDEvents 0.4.1 type versions.
COMPLEMENT_TYPES: tuple[str, ...] = tuple(
    f"dev.cdevents.{kind}.{version}"
    for kind, version in (
        ("branch.created", "0.2.0"), ("branch.deleted", "0.2.0"), ("change.created", "0.3.0"),
        ("change.reviewed", "0.2.0"), ("artifact.packaged", "0.2.0"),
        ("testsuiterun.started", "0.2.0"), ("testsuiterun.finished", "0.2.0"),
        ("ticket.created", "0.1.0"), ("ticket.updated", "0.1.0"), ("ticket.closed", "0.1.0"),
        ("repository.created", "0.2.0"), ("repository.modified", "0.2.0"),
        ("environment.created", "0.2.0"), ("environment.deleted", "0.2.0"),
    )
)  # fmt: skip


def complements(events: list[dict[str, Any]], seed: int = 1) -> list[dict[str, Any]]:
    """The events around the delivery flows of `events` (from `generate`), sorted by time.

    Each merged change gets its branch (created, deleted at the merge), its created and
    reviewed events, and now and then a tracking ticket and a preview environment; each
    published artifact its packaged event naming the change (so lead time starts at the
    merge); each test task its test suite run; each incident its ticket; now and then a
    repository its modified event; the environments their created events, and over time new
    repositories (libraries, tools) theirs. Deterministic.
    """
    rng = random.Random(f"complements-{seed}")  # noqa: S311 - reproducible data, not secrets
    extra = _Complements(rng)
    for event in events:
        extra.see(event)
    return extra.finish()


class _Complements:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.out: list[tuple[datetime, dict[str, Any]]] = []
        self.changes: dict[str, dict[str, Any]] = {}  # chain id → its change.merged subject
        self.suites: dict[tuple[str, str], dict[str, Any]] = {}  # (id, source) → what is known
        self.repositories: set[str] = set()
        self.first: datetime | None = None
        self.last: datetime | None = None

    def _emit(
        self,
        kind: str,
        at: datetime,
        source: str,
        subject: dict[str, Any],
        custom: dict[str, Any],
        chain: str | None = None,
    ) -> None:
        version = (
            "0.3.0" if kind == "change.created" else "0.1.0" if kind[:6] == "ticket" else "0.2.0"
        )
        context: dict[str, Any] = {
            "version": SPEC_VERSION,
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "source": source,
            "type": f"dev.cdevents.{kind}.{version}",
            "timestamp": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        }
        if chain is not None:
            context["chainId"] = chain
        doc = {
            "context": context,
            "subject": subject,
            "customData": custom,
            "customDataContentType": "application/json",
        }
        self.out.append((at, doc))

    def see(self, event: dict[str, Any]) -> None:
        context, subject = event["context"], event["subject"]
        at = datetime.fromisoformat(context["timestamp"])
        self.first = self.first or at
        self.last = at
        kind = context["type"].split(".")[2] + "." + context["type"].split(".")[3]
        custom = event.get("customData", {})
        repository = custom.get("repository")
        if repository:
            self.repositories.add(repository)
        if kind == "change.merged":
            self.changes[context["chainId"]] = subject
            self._change(event, at)
        elif kind == "artifact.published":
            change = self.changes.get(context.get("chainId", ""))
            if change is not None:
                self._packaged(event, at, change)
        elif kind in ("testcaserun.started", "testcaserun.finished"):
            content = subject["content"]
            run = content["testSuiteRun"]
            suite = self.suites.setdefault(
                (run["id"], run["source"]),
                {"first": at, "last": at, "failed": False, "event": event},
            )
            suite["last"] = at
            suite["failed"] = suite["failed"] or content.get("outcome") == "fail"
        elif kind in ("incident.detected", "incident.resolved"):
            self._incident_ticket(event, at, kind == "incident.resolved")

    def _change(self, event: dict[str, Any], merged: datetime) -> None:
        rng = self.rng
        subject, custom = event["subject"], event["customData"]
        chain = event["context"]["chainId"]
        github = subject["source"]
        repo_ref = subject["content"]["repository"]
        number = subject["id"].rsplit("/", 1)[-1]
        author = custom["author"].split("@")[0]
        light = {
            "team": custom["team"],
            "repository": custom["repository"],
            "author": custom["author"],
        }
        branched = merged - timedelta(seconds=rng.uniform(2 * 3600, 5 * 86400))
        opened = branched + (merged - branched) * rng.uniform(0.05, 0.5)
        reviewed = opened + (merged - opened) * rng.uniform(0.3, 0.95)
        branch = {
            "id": f"{custom['repository']}/tree/{author}/change-{number}",
            "source": github,
            "type": "branch",
            "content": {"repository": repo_ref},
        }
        self._emit("branch.created", branched, github, branch, light, chain)
        change = {"id": subject["id"], "source": github, "type": "change"}
        self._emit(
            "change.created",
            opened,
            github,
            {**change, "content": {"description": custom["title"], "repository": repo_ref}},
            light,
            chain,
        )
        self._emit(
            "change.reviewed",
            reviewed,
            github,
            {**change, "content": {"repository": repo_ref}},
            {**light, "reviewer": rng.choice(custom["reviewers"]), "state": "approved"},
            chain,
        )
        self._emit(
            "branch.deleted",
            merged + timedelta(seconds=rng.uniform(5, 60)),
            github,
            branch,
            light,
            chain,
        )
        if rng.random() < 0.1:
            argo = f"https://argocd.{ORG}.internal"
            name = f"preview-{custom['repository'].split('/')[-1]}-{number}"
            environment = {"id": name, "source": argo, "type": "environment"}
            self._emit(
                "environment.created",
                opened + timedelta(seconds=rng.uniform(60, 600)),
                argo,
                {
                    **environment,
                    "content": {"name": name, "url": f"https://{name}.preview.{ORG}.dev"},
                },
                light,
                chain,
            )
            self._emit(
                "environment.deleted",
                merged + timedelta(seconds=rng.uniform(60, 900)),
                argo,
                {**environment, "content": {"name": name}},
                light,
                chain,
            )
        if rng.random() < 0.15:
            tracker = f"https://jira.{ORG}.internal"
            key = f"{custom['team'].upper().replace('TEAM-', '')}-{number}"
            ticket = {"id": key, "source": tracker, "type": "ticket"}
            common = {
                "summary": custom["title"],
                "ticketType": rng.choice(("task", "enhancement", "bug")),
                "group": custom["team"],
                "creator": rng.choice(_PEOPLE),
                "priority": rng.choice(("low", "medium", "high")),
                "labels": [custom["labels"]["tier"]],
                "uri": f"{tracker}/browse/{key}",
            }
            created = branched - timedelta(seconds=rng.uniform(3600, 10 * 86400))
            self._emit("ticket.created", created, tracker, {**ticket, "content": common}, light)
            self._emit(
                "ticket.updated",
                branched,
                tracker,
                {**ticket, "content": {**common, "assignees": [author], "updatedBy": author}},
                light,
            )
            self._emit(
                "ticket.closed",
                merged + timedelta(seconds=rng.uniform(60, 3600)),
                tracker,
                {**ticket, "content": {**common, "resolution": "completed", "updatedBy": author}},
                light,
            )
        if rng.random() < 0.03:
            self._emit(
                "repository.modified",
                merged + timedelta(seconds=rng.uniform(60, 3600)),
                github,
                _repository_subject(custom["repository"], github),
                light,
            )

    def _packaged(self, event: dict[str, Any], published: datetime, change: dict[str, Any]) -> None:
        subject = event["subject"]
        self._emit(
            "artifact.packaged",
            published - timedelta(seconds=self.rng.uniform(2, 20)),
            event["context"]["source"],
            {
                "id": subject["id"],
                "source": subject["source"],
                "type": "artifact",
                "content": {
                    "change": {"id": change["id"], "source": change["source"]},
                    "sbom": subject["content"]["sbom"],
                },
            },
            {"version": event["customData"]["version"], "image": event["customData"]["image"]},
            event["context"]["chainId"],
        )

    def _incident_ticket(self, event: dict[str, Any], at: datetime, resolved: bool) -> None:
        rng = self.rng
        incident = event["subject"]
        tracker = f"https://jira.{ORG}.internal"
        key = f"OPS-{incident['id'].split('-')[-1]}"
        content = {
            "summary": incident["content"]["description"],
            "ticketType": "incident",
            "group": event["customData"]["team"],
            "creator": "alertmanager",
            "priority": "high",
            "uri": f"{tracker}/browse/{key}",
        }
        ticket = {"id": key, "source": tracker, "type": "ticket"}
        light = {"incident": incident["id"], "severity": event["customData"]["severity"]}
        if resolved:
            self._emit(
                "ticket.closed",
                at + timedelta(seconds=rng.uniform(60, 1800)),
                tracker,
                {**ticket, "content": {**content, "resolution": "completed"}},
                light,
                event["context"]["chainId"],
            )
        else:
            self._emit(
                "ticket.created",
                at + timedelta(seconds=rng.uniform(30, 300)),
                tracker,
                {**ticket, "content": content},
                light,
                event["context"]["chainId"],
            )

    def finish(self) -> list[dict[str, Any]]:
        rng = self.rng
        for (run_id, source), suite in self.suites.items():
            case = suite["event"]
            content = case["subject"]["content"]
            name = run_id.rsplit("-run-", 1)[0]  # <service>-run-<n>-<task>
            task = "unit-tests" if run_id.endswith("unit-tests") else "integration-tests"
            test_suite = {
                "id": f"{name}/{task}",
                "name": task,
                "version": "1",
                "uri": f"https://github.com/{ORG}/{name}/tree/main/tests",
            }
            subject = {"id": run_id, "source": source, "type": "testSuiteRun"}
            custom = {"team": case["customData"]["team"], "repository": f"{ORG}/{name}"}
            chain = case["context"].get("chainId")
            self._emit(
                "testsuiterun.started",
                suite["first"] - timedelta(seconds=0.05),
                source,
                {**subject, "content": {"environment": content["environment"],
                                        "testSuite": test_suite, "trigger": {"type": "pipeline"}}},
                custom,
                chain,
            )  # fmt: skip
            finished: dict[str, Any] = {
                "environment": content["environment"],
                "testSuite": test_suite,
                "outcome": "fail" if suite["failed"] else "pass",
            }
            if suite["failed"]:
                finished["severity"] = rng.choice(("medium", "high"))
                finished["reason"] = "one or more test cases failed"
            self._emit(
                "testsuiterun.finished",
                suite["last"] + timedelta(seconds=rng.uniform(0.1, 2)),
                source,
                {**subject, "content": finished},
                custom,
                chain,
            )
        if self.first is not None and self.last is not None:
            github = "https://github.com"
            # New repositories (libraries, tools) keep appearing over the span.
            span = (self.last - self.first).total_seconds()
            for index in range(max(1, len(self.repositories) // 2)):
                repository = f"{ORG}/{rng.choice(_DOMAINS)}-lib-{index}"
                self._emit(
                    "repository.created",
                    self.first + timedelta(seconds=rng.uniform(0, span)),
                    f"{github}/{repository}",
                    _repository_subject(repository, f"{github}/{repository}"),
                    {"team": rng.choice(_TEAMS)},
                )
            argo = f"https://argocd.{ORG}.internal"
            for name in ENVIRONMENTS:
                self._emit(
                    "environment.created",
                    self.first - timedelta(seconds=rng.uniform(60, 3600)),
                    argo,
                    {"id": name, "source": argo, "type": "environment",
                     "content": {"name": name, "url": f"https://{name}.{ORG}.internal"}},
                    {"team": "platform"},
                )  # fmt: skip
        self.out.sort(key=lambda pair: pair[0])
        return [doc for _, doc in self.out]


def _repository_subject(repository: str, source: str) -> dict[str, Any]:
    owner, name = repository.split("/", 1)
    return {
        "id": repository,
        "source": source,
        "type": "repository",
        "content": {
            "name": name,
            "owner": owner,
            "url": f"git@github.com:{repository}.git",
            "viewUrl": f"https://github.com/{repository}",
        },
    }
