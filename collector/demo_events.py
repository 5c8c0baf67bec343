"""Realistic event streams, deterministic from a seed: for benchmarks and `collector demo`.

CDEvents 0.4.1: services go through delivery flows (change merged → pipeline run → tasks,
build, tests → artifact → deployments, now and then a rollback or an incident), ~1 KB events
with unique ids. `generate` is the benchmarks' stream (random services at random times within
the last few days, sorted by time); `demo_deliveries` the demo's (every service at the pace of
its DORA performer group over weeks, with the whole lifecycle). `cluster_lines` is an HPC
centre's ClusterCockpit line protocol: jobs, node events and logs.
"""

from __future__ import annotations

import bisect
import random
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SPEC_VERSION = "0.4.1"
TYPE_VERSION = "0.2.0"
# The types of CDEvents 0.4.1 whose version is not TYPE_VERSION.
_TYPE_VERSIONS = {"change.created": "0.3.0"}
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

    @property
    def home_region(self) -> str:
        """The production environment the demo deploys it to (one per service, so that DORA
        per service counts each change once)."""
        regions = ENVIRONMENTS[4:]
        return regions[zlib.crc32(self.name.encode()) % len(regions)]

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

    The same arguments give the same events; ids are unique. This is the benchmarks' stream:
    random services at random times, and it stays the same from one commit to the next so that
    figures stay comparable (`demo_deliveries` is the demo's richer stream; `complements`
    adds what happens around these flows).
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


# -- DORA performers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Performer:
    """How a group of services delivers: the pace and quality the four DORA metrics measure.

    Times are ranges in seconds, drawn uniformly. A deployment (but a service's first to an
    environment) is rolled back with `rollback_rate`, and the rollout stops there; one to
    production that is not is followed by an incident with `incident_rate` (so their sum is
    the change failure rate in production); the incident is resolved `restore_s` after it was
    detected.
    """

    name: str
    share: float  # of the fleet
    deliveries_per_day: float  # merged changes per service per day, each one a delivery
    review_s: tuple[float, float]  # change created → merged
    merge_wait_s: tuple[float, float]  # merged → pipeline queued (a release train waits here)
    pipeline_failure_rate: float
    dev_wait_s: tuple[float, float]  # pipeline finished → deployed to dev
    staging_wait_s: tuple[float, float]  # dev → staging (qa, perf)
    prod_wait_s: tuple[float, float]  # staging → production
    rollback_rate: float
    incident_rate: float
    detect_s: tuple[float, float]  # deployed → incident detected
    restore_s: tuple[float, float]  # incident detected → resolved

    def deploy_wait_s(self, environment: str) -> tuple[float, float]:
        if environment == "dev":
            return self.dev_wait_s
        if environment.startswith("prod"):
            return self.prod_wait_s
        return self.staging_wait_s


_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0

# The benchmark stream's fixed numbers (see `generate`).
BENCH = Performer(
    name="bench",
    share=0.0,
    deliveries_per_day=0.0,
    review_s=(0, 0),
    merge_wait_s=(1, 30),
    pipeline_failure_rate=0.12,
    dev_wait_s=(30, 1800),
    staging_wait_s=(30, 1800),
    prod_wait_s=(30, 1800),
    rollback_rate=0.03,
    incident_rate=0.03,
    detect_s=(60, 3600),
    restore_s=(300, 7200),
)

# Each group is built to land in its DORA rating for production (api.dora_* with the prod
# environments): deployment frequency per service (elite ≥ 1 a day, high ≥ 1 a week, medium
# ≥ 1 a month), lead time from merge (< 1 day, < 1 week, < 30 days), change failure rate
# (≤ 5 %, ≤ 10 %, ≤ 15 %) and time to restore (< 1 hour, < 1 day, < 1 week).
PERFORMERS: tuple[Performer, ...] = (
    Performer(
        name="elite",
        share=0.15,
        deliveries_per_day=1.5,
        review_s=(20 * _MINUTE, 6 * _HOUR),
        merge_wait_s=(1 * _MINUTE, 10 * _MINUTE),
        pipeline_failure_rate=0.05,
        dev_wait_s=(2 * _MINUTE, 10 * _MINUTE),
        staging_wait_s=(10 * _MINUTE, 40 * _MINUTE),
        prod_wait_s=(20 * _MINUTE, 3 * _HOUR),
        rollback_rate=0.01,
        incident_rate=0.02,
        detect_s=(2 * _MINUTE, 20 * _MINUTE),
        restore_s=(8 * _MINUTE, 50 * _MINUTE),
    ),
    Performer(
        name="high",
        share=0.45,
        deliveries_per_day=2.0 / 7,
        review_s=(2 * _HOUR, 2 * _DAY),
        merge_wait_s=(10 * _MINUTE, 6 * _HOUR),
        pipeline_failure_rate=0.10,
        dev_wait_s=(10 * _MINUTE, 2 * _HOUR),
        staging_wait_s=(2 * _HOUR, 1 * _DAY),
        prod_wait_s=(1 * _DAY, 4 * _DAY),
        rollback_rate=0.03,
        incident_rate=0.05,
        detect_s=(10 * _MINUTE, 3 * _HOUR),
        restore_s=(2 * _HOUR, 14 * _HOUR),
    ),
    Performer(
        name="medium",
        share=0.4,
        deliveries_per_day=2.5 / 30,
        review_s=(1 * _DAY, 6 * _DAY),
        merge_wait_s=(1 * _DAY, 5 * _DAY),
        pipeline_failure_rate=0.15,
        dev_wait_s=(1 * _HOUR, 1 * _DAY),
        staging_wait_s=(1 * _DAY, 4 * _DAY),
        prod_wait_s=(4 * _DAY, 12 * _DAY),
        rollback_rate=0.05,
        incident_rate=0.08,
        detect_s=(1 * _HOUR, 1 * _DAY),
        restore_s=(1.5 * _DAY, 5 * _DAY),
    ),
)


def performers(seed: int, fleet: list[Service]) -> dict[str, Performer]:
    """Each service's performer group, deterministic from `seed`: the shares of PERFORMERS,
    rounded, with every group present once the fleet has as many services as groups."""
    rng = random.Random(f"performers-{seed}")  # noqa: S311 - reproducible data, not secrets
    names = [s.name for s in fleet]
    rng.shuffle(names)
    counts = [max(1, round(p.share * len(names))) for p in PERFORMERS]
    counts[-1] = max(0, len(names) - sum(counts[:-1]))
    assigned: dict[str, Performer] = {}
    position = 0
    for performer, count in zip(PERFORMERS, counts, strict=True):
        for name in names[position : position + count]:
            assigned[name] = performer
        position += count
    return assigned


# Merges follow the working week: the weight of each hour of a week (Monday 00:00 UTC first).
_WEEK_WEIGHTS = tuple(
    (1.0 if 8 <= hour % 24 < 18 else 0.12) if hour < 5 * 24 else 0.04 for hour in range(7 * 24)
)
_WEEK_CUMULATIVE = tuple(
    sum(_WEEK_WEIGHTS[:hour]) for hour in range(len(_WEEK_WEIGHTS) + 1)
)  # fmt: skip


def _working_time(at: datetime) -> datetime:
    """`at` moved within its week so that uniform times follow the working week's weights.

    Monotone, and a function of `at` alone: schedules draw the same random numbers whatever
    the clock, so event ids do not depend on it.
    """
    monday = (at - timedelta(days=at.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    target = (at - monday) / timedelta(days=7) * _WEEK_CUMULATIVE[-1]
    hour = bisect.bisect_right(_WEEK_CUMULATIVE, target) - 1
    fraction = (target - _WEEK_CUMULATIVE[hour]) / _WEEK_WEIGHTS[hour]
    return monday + timedelta(hours=hour + fraction)


def schedule(
    seed: int, service: Service, performer: Performer, start: datetime, end: datetime
) -> list[datetime]:
    """When `service` merges changes between start and end, in order: a Poisson process at
    the performer's rate, shaped by the working week."""
    rng = random.Random(f"schedule-{seed}-{service.name}")  # noqa: S311 - reproducible data
    span_days = (end - start) / timedelta(days=1)
    times: list[datetime] = []
    offset = rng.expovariate(performer.deliveries_per_day)
    while offset < span_days:
        # Near `end` this may be a time to come: its events are then left out, but the delivery
        # stays, so that the random numbers drawn, and the ids, do not depend on the clock.
        times.append(_working_time(start + timedelta(days=offset)))
        offset += rng.expovariate(performer.deliveries_per_day)
    return times


@dataclass(frozen=True)
class DemoPlan:
    """Who delivers when: the demo's services, their performer groups and merge times."""

    seed: int
    start: datetime
    end: datetime
    fleet: list[Service]
    groups: dict[str, Performer]
    schedules: dict[str, list[datetime]]

    @property
    def deliveries(self) -> int:
        return sum(len(times) for times in self.schedules.values())


def demo_plan(seed: int, count: int, end: datetime, days: float) -> DemoPlan:
    """The plan for `count` services over the `days` before `end` (see `demo_deliveries`)."""
    end = end.astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    fleet = services(seed, count)
    groups = performers(seed, fleet)
    schedules = {s.name: schedule(seed, s, groups[s.name], start, end) for s in fleet}
    return DemoPlan(seed, start, end, fleet, groups, schedules)


def demo_deliveries(plan: DemoPlan) -> Iterator[list[dict[str, Any]]]:
    """Each planned delivery as its CDEvents: the change (created, merged), the pipeline run
    with its tasks, build, test suites and cases (some tests flaky), the artifact (packaged
    from the change, published), deployments to dev, staging and the service's production
    region, rollbacks and incidents, at its performer group's pace.

    Events after the plan's end are left out (a slow delivery begun lately has not reached
    production yet). Ids depend on the seed and the number of services and days, not on the
    clock; times are relative to the plan's end.
    """
    rng = random.Random(f"demo-{plan.seed}")  # noqa: S311 - reproducible data, not secrets
    flow = _Flow(rng, plan.fleet, plan.start, plan.end, complete=True, seed=plan.seed)
    for service in plan.fleet:
        performer = plan.groups[service.name]
        for at in plan.schedules[service.name]:
            events = flow.deliver(service, at, performer)
            yield [doc for moment, doc in events if moment <= plan.end]


@dataclass(frozen=True, slots=True)
class _TestCase:
    case: dict[str, Any]
    flaky: bool


class _Flow:
    """One service's way from a merged change to production, as CDEvents.

    `complete` adds what the benchmark stream leaves out (see `generate`): changes created
    before their merge, test suite runs around a service's own test cases (some flaky: they
    fail now and then and pass when retried), artifacts packaged from their change (so DORA
    lead time starts at the merge) and rollbacks to the artifact that ran before.
    """

    def __init__(
        self,
        rng: random.Random,
        fleet: list[Service],
        start: datetime,
        end: datetime,
        *,
        complete: bool = False,
        seed: int = 0,
    ) -> None:
        self.rng = rng
        self.fleet = fleet
        self.start = start
        self.span_s = (end - start).total_seconds() - 4 * 3600  # flows end before `end`
        self.complete = complete
        self.seed = seed
        self.versions: dict[str, tuple[int, int, int]] = {}
        self.deployed: set[tuple[str, str]] = set()
        self.running: dict[tuple[str, str], str] = {}  # (service, environment) → artifact
        self.catalogues: dict[str, dict[str, list[_TestCase]]] = {}
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
            "type": f"dev.cdevents.{kind}.{_TYPE_VERSIONS.get(kind, TYPE_VERSION)}",
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
        """A delivery of a random service at a random time (the benchmark stream)."""
        rng = self.rng
        service = rng.choice(self.fleet)
        at = self.start + timedelta(seconds=rng.uniform(0, self.span_s))
        return self.deliver(service, at, BENCH)

    def deliver(
        self, service: Service, at: datetime, performer: Performer
    ) -> list[tuple[datetime, dict[str, Any]]]:
        """The events of one change of `service` merged about `at`, in the order emitted."""
        rng = self.rng
        self.events = []
        self.at = at
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
        title = f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}"
        change_custom = {
            **custom,
            "title": title,
            "reviewers": [f"{p}@{ORG}.example" for p in rng.sample(_PEOPLE, 2)],
        }
        merged_at = self._tick(0, 60)
        created = None
        if self.complete:
            created = self._emit(
                "change.created",
                github,
                {
                    "id": change,
                    "source": github,
                    "type": "change",
                    "content": {"description": title, "repository": repo_ref},
                },
                change_custom,
                chain,
                None,
                merged_at - timedelta(seconds=rng.uniform(*performer.review_s)),
            )
        merged = self._emit(
            "change.merged",
            github,
            {"id": change, "source": github, "type": "change", "content": {"repository": repo_ref}},
            change_custom,
            chain,
            created,
            merged_at,
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
            self._tick(*performer.merge_wait_s),
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
        failed = rng.random() < performer.pipeline_failure_rate
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
                if self.complete:
                    broken = index == failing_task
                    self._suite(service, ci, task, run_id, run_custom, chain, task_started, broken)
                else:
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
        artifact_custom = {**custom, "version": tag, "image": service.image(tag)}
        artifact_subject = {"id": artifact, "source": registry, "type": "artifact"}
        parent = finished
        if self.complete:
            parent = self._emit(
                "artifact.packaged",
                ci,
                {
                    **artifact_subject,
                    "content": {
                        "change": {"id": change, "source": github},
                        "sbom": {"uri": f"{registry}/sbom/{tag}.spdx.json"},
                    },
                },
                artifact_custom,
                chain,
                finished,
                self._tick(1, 10),
            )
        self._emit(
            "artifact.published",
            registry,
            {
                **artifact_subject,
                "content": {
                    "sbom": {"uri": f"{registry}/sbom/{tag}.spdx.json"},
                    "user": f"{service.ci}-bot",
                },
            },
            artifact_custom,
            chain,
            parent,
            self._tick(1, 30),
        )
        if self.complete:
            targets = ["dev", "staging", service.home_region]
        else:
            targets = ["dev", "staging"]
            if rng.random() < 0.6:
                targets += rng.sample(ENVIRONMENTS[4:], rng.randint(1, 3))
            elif rng.random() < 0.3:
                targets.append(rng.choice(("qa", "perf")))
        for environment in targets:
            if not self._deploy(
                service, environment, artifact, tag, custom, chain, finished, performer
            ):
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
        """A few test cases made up on the spot (the benchmark stream)."""
        rng = self.rng
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
            self._test_case_run(
                ci,
                task,
                run_id,
                suite,
                case,
                custom,
                chain,
                parent,
                lambda: "fail" if failing and rng.random() < 0.5 else "pass",
            )

    def _test_case_run(
        self,
        ci: str,
        task: str,
        run_id: str,
        suite: dict[str, str],
        case: dict[str, str],
        custom: dict[str, Any],
        chain: str,
        parent: str,
        outcome: str | Callable[[], str],
    ) -> str:
        """One test case run: started, then finished with `outcome` (or what it returns, asked
        once the run started)."""
        rng = self.rng
        environment = {"id": "ci", "source": ci}
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
        if callable(outcome):
            outcome = outcome()
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
        return outcome

    def _catalogue(self, service: Service) -> dict[str, list[_TestCase]]:
        """The service's own test cases per test task, the same in every run; about one in
        seven is flaky."""
        found = self.catalogues.get(service.name)
        if found is not None:
            return found
        rng = random.Random(f"tests-{self.seed}-{service.name}")  # noqa: S311 - reproducible
        catalogue: dict[str, list[_TestCase]] = {}
        for task, count in (("unit-tests", 3), ("integration-tests", 2)):
            cases = []
            for thing in rng.sample(_THINGS, count):
                test = thing.replace(" ", "_")
                kind = "unit" if task == "unit-tests" else rng.choice(_TEST_TYPES[1:])
                case = {
                    "id": f"{service.name}/{kind}/test_{test}",
                    "name": f"test_{test}",
                    "type": kind,
                    "version": "1",
                    "uri": f"{service.repository_url}/blob/main/tests/test_{test}",
                }
                cases.append(_TestCase(case, flaky=rng.random() < 0.15))
            catalogue[task] = cases
        self.catalogues[service.name] = catalogue
        return catalogue

    def _suite(
        self,
        service: Service,
        ci: str,
        task: str,
        run_id: str,
        custom: dict[str, Any],
        chain: str,
        parent: str,
        broken: bool,
    ) -> None:
        """A test suite run of the service's own cases. A flaky case that fails is retried
        once and passes; when `broken`, one case fails for real and so does the suite."""
        rng = self.rng
        cases = self._catalogue(service)[task]
        environment = {"id": "ci", "source": ci}
        suite = {"id": f"{run_id}-{task}", "source": ci}
        test_suite = {
            "id": f"{service.name}/{task}",
            "name": task,
            "version": "1",
            "uri": f"{service.repository_url}/tree/main/tests",
        }
        subject = {**suite, "type": "testSuiteRun"}
        started = self._emit(
            "testsuiterun.started",
            ci,
            {
                **subject,
                "content": {
                    "environment": environment,
                    "testSuite": test_suite,
                    "trigger": {"type": "pipeline"},
                },
            },
            custom,
            chain,
            parent,
            self._tick(0.1, 2),
        )
        broken_case = rng.randrange(len(cases)) if broken else -1
        failures = 0
        for index, test in enumerate(cases):
            if index == broken_case:
                outcome = "fail"
            elif test.flaky and rng.random() < 0.3:
                outcome = "flaky"
            else:
                outcome = "pass"
            first = "pass" if outcome == "pass" else "fail"
            self._test_case_run(ci, task, run_id, suite, test.case, custom, chain, started, first)
            if outcome == "flaky":
                retry = {**custom, "retry": 1}
                self._test_case_run(
                    ci, task, run_id, suite, test.case, retry, chain, started, "pass"
                )
            failures += outcome == "fail"
        content: dict[str, Any] = {
            "environment": environment,
            "testSuite": test_suite,
            "outcome": "fail" if failures else "pass",
        }
        if failures:
            content["severity"] = "high"
            content["reason"] = f"{failures} of {len(cases)} test cases failed"
        self._emit(
            "testsuiterun.finished",
            ci,
            {**subject, "content": content},
            {**custom, "durationMs": rng.randint(2_000, 900_000)},
            chain,
            started,
            self._tick(0.1, 5),
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
        performer: Performer,
    ) -> bool:
        """Deploy to one environment; False when it went wrong and the rollout stops."""
        rng = self.rng
        cd = f"https://argocd.{ORG}.internal/applications/{service.name}-{environment}"
        env_ref = {"id": environment, "source": f"https://argocd.{ORG}.internal"}
        subject = {"id": f"{service.name}", "source": cd, "type": "service"}
        key = (service.name, environment)
        first = key not in self.deployed
        self.deployed.add(key)
        previous = self.running.get(key, artifact)
        self.running[key] = artifact
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
            self._tick(*performer.deploy_wait_s(environment)),
        )
        roll = rng.random()
        if roll < performer.rollback_rate and not first:
            back_to = previous if self.complete else artifact
            self.running[key] = back_to
            self._emit(
                "service.rolledback",
                cd,
                {**subject, "content": {"environment": env_ref, "artifactId": back_to}},
                {**deploy_custom, "reason": "health checks failed"},
                chain,
                deployed,
                self._tick(60, 900),
            )
            return False
        if roll < performer.rollback_rate + performer.incident_rate and environment.startswith(
            "prod"
        ):
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
                self._tick(*performer.detect_s),
            )
            self._emit(
                "incident.resolved",
                monitor,
                {"id": incident, "source": monitor, "type": "incident", "content": content},
                {**alert, "timeToResolveMs": rng.randint(60_000, 7_200_000)},
                chain,
                detected,
                self._tick(*performer.restore_s),
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
    f"dev.cdevents.{kind}.{_TYPE_VERSIONS.get(kind, TYPE_VERSION)}"
    for kind in (
        "change.merged", "pipelinerun.queued", "pipelinerun.started", "pipelinerun.finished",
        "taskrun.started", "taskrun.finished", "build.queued", "build.started", "build.finished",
        "testcaserun.started", "testcaserun.finished", "artifact.published", "service.deployed",
        "service.upgraded", "service.rolledback", "incident.detected", "incident.resolved",
        # the demo's (demo_deliveries) only
        "change.created", "testsuiterun.started", "testsuiterun.finished", "artifact.packaged",
    )
)  # fmt: skip


def payloads(n: int, seed: int = 1, now: datetime | None = None) -> list[bytes]:
    """The same events as `generate`, each as compact JSON bytes (one message or line each)."""
    return [orjson.dumps(doc) for doc in generate(n, seed=seed, now=now)]


# -- An HPC centre: ClusterCockpit messages ----------------------------------------------------
# Two clusters as cc-metric-collector and cc-backend report them in InfluxDB line protocol: job
# starts and stops (`job,function=start_job|stop_job`, the job as JSON), node events (drains,
# GPU errors, file systems, OOM kills) and log lines with a `loglevel` tag.

_PROJECTS = {
    "climate-lab": ("icon-r2b8", "era5-regrid", "cmip7-ens"),
    "cfd-turbulence": ("les-channel", "openfoam-airfoil", "dns-re5200"),
    "genomics": ("gatk-joint", "bwa-align", "nanopore-basecall"),
    "qcd-lattice": ("hmc-b6.0", "propagators", "wilson-flow"),
    "materials-dft": ("vasp-relax", "qe-phonons", "cp2k-md"),
    "ml-vision": ("resnet-sweep", "vit-pretrain", "diffusion-ft"),
    "astro-sph": ("gadget4-box", "halo-finder", "ramses-zoom"),
    "bio-md": ("gromacs-membrane", "amber-ligand", "namd-spike"),
}
_JOB_STATES = ("completed", "failed", "cancelled", "timeout", "out_of_memory")
_JOB_STATE_WEIGHTS = (80, 9, 6, 4, 1)
_DRAIN_REASONS = (
    "DRAIN: Kill task failed", "DRAIN: memory ECC errors above threshold",
    "DOWN: Not responding", "DRAIN: node health check failed (ib0 down)",
)  # fmt: skip
_XIDS = (
    "Xid 79: GPU has fallen off the bus", "Xid 48: Double Bit ECC Error",
    "Xid 13: Graphics Engine Exception", "Xid 31: GPU memory page fault",
)  # fmt: skip
_BACKGROUND_LOGS = (
    # (measurement, level, message)
    ("sshd", "info", "Accepted publickey for {user} from 10.28.{a}.{b} port {port} ssh2"),
    ("systemd", "info", "Started Session {port} of user {user}."),
    ("cc-metric-collector", "debug", "collector likwid: read {n} metrics in {ms} ms"),
    ("cc-metric-collector", "info", "sink nats: flushed {n} metrics"),
    ("kernel", "info", "perf: interrupt took too long ({n} > {ms}), lowering rate"),
    ("kernel", "warn", "EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#{a}_DIMM#0"),
    ("slurmd", "warn", "Job step took {ms} ms to terminate, above UnkillableStepTimeout"),
    ("cc-metric-collector", "error", "collector nvidia: nvmlDeviceGetPowerUsage: Unknown Error"),
    ("kernel", "error", "nfs: server fileserver1 not responding, still trying"),
)  # fmt: skip
_BACKGROUND_WEIGHTS = (30, 20, 25, 20, 4, 3, 1.5, 0.6, 0.4)


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    sub_cluster: str
    hosts: tuple[str, ...]
    gpus: int  # per node
    cores: int  # hardware threads per node

    @property
    def admin_host(self) -> str:
        return f"{self.name}-slurmctld"


def clusters(nodes: int) -> list[Cluster]:
    """`nodes` compute nodes: three quarters in the CPU cluster fritz, the rest (one node at
    least, from two nodes on) in the GPU cluster alex."""
    gpu_nodes = nodes // 4 if nodes >= 4 else (1 if nodes >= 2 else 0)
    cpu_nodes = nodes - gpu_nodes
    found = [
        Cluster("fritz", "main", tuple(f"f{101 + i:04d}" for i in range(cpu_nodes)), 0, 72),
    ]
    if gpu_nodes:
        found.append(
            Cluster("alex", "a100", tuple(f"a{101 + i:04d}" for i in range(gpu_nodes)), 8, 128)
        )
    return found


def cluster_lines(seed: int, nodes: int, end: datetime, days: float) -> list[str]:
    """ClusterCockpit line protocol for the `days` before `end`, sorted by time: jobs (those
    still running at `end` have no stop), node events and logs. Timestamps are nanoseconds
    relative to `end`; the same seed and `end` give the same lines (and so the same ids)."""
    end = end.astimezone(UTC).replace(microsecond=0)
    rng = random.Random(f"cluster-{seed}")  # noqa: S311 - reproducible data, not secrets
    start = end - timedelta(days=days)
    lines: list[tuple[datetime, str]] = []
    job_id = 4_100_000
    for cluster in clusters(nodes):
        for job_start in _poisson(rng, start, end, per_day=len(cluster.hosts) * 2.0):
            job_id += rng.randint(1, 40)
            lines.extend(_job(rng, cluster, job_id, job_start, end))
        for host in cluster.hosts:
            lines.extend(_node_events(rng, cluster, host, start, end))
            lines.extend(_background_logs(rng, cluster, host, start, end))
    lines.sort(key=lambda pair: pair[0])
    return [line for _, line in lines]


def _poisson(rng: random.Random, start: datetime, end: datetime, per_day: float) -> list[datetime]:
    times = []
    at = start + timedelta(days=rng.expovariate(per_day))
    while at < end:
        times.append(at)
        at += timedelta(days=rng.expovariate(per_day))
    return times


def _ns(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000


def _string(text: str) -> str:
    """A line-protocol string field value."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(measurement: str, tags: dict[str, str], field: str, text: str, at: datetime) -> str:
    tag_text = ",".join(f"{key}={value}" for key, value in tags.items())
    return f"{measurement},{tag_text} {field}={_string(text)} {_ns(at)}"


def _job(
    rng: random.Random, cluster: Cluster, job_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, str]]:
    project = rng.choice(list(_PROJECTS))
    user = f"{project.split('-')[0][:4]}{rng.randint(1, 6):02d}h"
    if cluster.gpus:
        num_nodes = min(len(cluster.hosts), rng.choices((1, 2), weights=(9, 1))[0])
        num_acc = cluster.gpus * num_nodes if num_nodes > 1 else rng.choice((1, 2, 4, 8))
        partition = cluster.sub_cluster
    else:
        num_nodes = min(len(cluster.hosts), rng.choice((1, 1, 1, 2, 2, 4, 8)))
        num_acc = 0
        partition = "singlenode" if num_nodes == 1 else "multinode"
    hosts = rng.sample(cluster.hosts, num_nodes)
    walltime = rng.choice((3600, 6 * 3600, 12 * 3600, 24 * 3600))
    state = rng.choices(_JOB_STATES, weights=_JOB_STATE_WEIGHTS)[0]
    duration = walltime if state == "timeout" else int(rng.uniform(0.02, 0.95) * walltime)
    start = start.replace(microsecond=0)
    job: dict[str, Any] = {
        "jobId": job_id,
        "user": user,
        "project": project,
        "cluster": cluster.name,
        "subCluster": cluster.sub_cluster,
        "partition": partition,
        "arrayJobId": 0,
        "numNodes": num_nodes,
        "numHwthreads": cluster.cores * num_nodes,
        "numAcc": num_acc,
        "exclusive": 1,
        "walltime": walltime,
        "jobState": "running",
        "startTime": int(start.timestamp()),
        "resources": [{"hostname": host} for host in hosts],
        "metaData": {"jobName": rng.choice(_PROJECTS[project])},
    }
    admin = {"cluster": cluster.name, "hostname": cluster.admin_host, "type": "node"}
    start_tags = {"function": "start_job", **admin}
    found = [(start, _line("job", start_tags, "event", orjson.dumps(job).decode(), start))]
    for host in hosts:
        tags = {"cluster": cluster.name, "hostname": host, "type": "node", "loglevel": "info"}
        found.append((start, _line("slurmd", tags, "log", f"launching batch job {job_id}", start)))
    stop = start + timedelta(seconds=duration)
    if stop > end:
        return found  # still running
    stopped = {**job, "jobState": state, "stopTime": int(stop.timestamp()), "duration": duration}
    stop_tags = {"function": "stop_job", **admin}
    found.append((stop, _line("job", stop_tags, "event", orjson.dumps(stopped).decode(), stop)))
    for host in hosts:
        level = "info" if state == "completed" else "warn"
        tags = {"cluster": cluster.name, "hostname": host, "type": "node", "loglevel": level}
        text = f"job {job_id} ended: {state}, exit code {0 if state == 'completed' else 1}"
        found.append((stop, _line("slurmd", tags, "log", text, stop)))
    if state == "out_of_memory":
        host = hosts[0]
        oom = {
            "jobId": job_id,
            "process": rng.choice(("python", "vasp_std", "gmx_mpi")),
            "rss_gb": 250,
        }
        tags = {"cluster": cluster.name, "hostname": host, "type": "node"}
        found.append((stop, _line("oom_kill", tags, "event", orjson.dumps(oom).decode(), stop)))
        log_tags = {**tags, "loglevel": "error"}
        text = f"Out of memory: Killed process {rng.randint(1000, 99999)} ({oom['process']})"
        found.append((stop, _line("kernel", log_tags, "log", text, stop)))
    return found


def _node_events(
    rng: random.Random, cluster: Cluster, host: str, start: datetime, end: datetime
) -> list[tuple[datetime, str]]:
    node = {"cluster": cluster.name, "hostname": host, "type": "node"}
    found = []
    for at in _poisson(rng, start, end, per_day=0.04):  # a drain, then a resume
        reason = rng.choice(_DRAIN_REASONS)
        found.append((at, _line("node_state", node, "event", reason, at)))
        found.append((at, _line("slurmctld", {**node, "loglevel": "error"}, "log", reason, at)))
        back = at + timedelta(hours=rng.uniform(0.5, 18))
        if back <= end:
            found.append((back, _line("node_state", node, "event", "IDLE: resumed", back)))
    for at in _poisson(rng, start, end, per_day=0.02):  # a file system goes away and comes back
        fs = {**node, "stype": "filesystem", "stype-id": rng.choice(("/home", "/scratch"))}
        found.append((at, _line("filesystem", fs, "event", "mount lost", at)))
        back = at + timedelta(minutes=rng.uniform(2, 90))
        if back <= end:
            found.append((back, _line("filesystem", fs, "event", "mount restored", back)))
    if cluster.gpus:
        for at in _poisson(rng, start, end, per_day=0.08):
            gpu = {
                **node,
                "type": "accelerator",
                "type-id": f"0000:{rng.randrange(8) * 16 + 7:02x}:00.0",
            }
            found.append((at, _line("gpu_xid", gpu, "event", rng.choice(_XIDS), at)))
    return found


def _background_logs(
    rng: random.Random, cluster: Cluster, host: str, start: datetime, end: datetime
) -> list[tuple[datetime, str]]:
    found = []
    for at in _poisson(rng, start, end, per_day=16):
        name, level, text = rng.choices(_BACKGROUND_LOGS, weights=_BACKGROUND_WEIGHTS)[0]
        message = text.format(
            user=f"{rng.choice(list(_PROJECTS)).split('-')[0][:4]}{rng.randint(1, 6):02d}h",
            a=rng.randrange(256),
            b=rng.randrange(256),
            port=rng.randint(1024, 65535),
            n=rng.randint(10, 4000),
            ms=rng.randint(1, 900),
        )
        tags = {"cluster": cluster.name, "hostname": host, "type": "node", "loglevel": level}
        found.append((at, _line(name, tags, "log", message, at)))
    return found


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
