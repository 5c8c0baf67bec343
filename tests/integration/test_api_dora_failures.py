"""Change failure rate against its definition, on random histories full of ties.

api.dora_change_failure_rate is computed set-based (one timeline per service and environment);
here every deployment is judged one by one as the definition reads: failed when, after it and
up to the next deployment of that service to that environment (or at any later time without
one), the service was rolled back there or an incident began for it there. Times fall on a
coarse grid, so deployments, rollbacks and incidents often share a time; some deployments name
no environment; ranges end before, inside and after the histories.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.integration.cdevents_factory import Doc, cdevent, ingest

Conn = psycopg.Connection[Any]

B = datetime(2025, 3, 3, tzinfo=UTC)
SERVICES = ("api", "web")
ENVIRONMENTS = ("prod", "staging")


def history(rng: random.Random) -> tuple[list[Doc], list[tuple[str, str | None, str, datetime]]]:
    """CDEvents, and the same facts as (kind, environment, service, time)."""
    docs: list[Doc] = []
    facts: list[tuple[str, str | None, str, datetime]] = []
    for n in range(60):
        kind = rng.choice(("deployed", "upgraded", "upgraded", "rolledback", "incident"))
        service = rng.choice(SERVICES)
        # Some deployment events name no environment; every incident names one.
        environment = rng.choice(ENVIRONMENTS if kind == "incident" else (*ENVIRONMENTS, None))
        when = B + timedelta(hours=rng.randrange(0, 48, 4))
        if kind == "incident":
            content = {"environment": {"id": environment}, "service": {"id": service}}
            docs.append(
                cdevent("0.5", "incident", "detected", f"i{n}", when, content, source="/mon")
            )
        else:
            content = {"environment": {"id": environment}} if environment else {}
            docs.append(
                cdevent(
                    "0.5", "service", kind, service, when, {**content, "artifactId": "a"},
                    source="/cd", event_id=f"d{n}",
                )
            )  # fmt: skip
        facts.append((kind, environment, service, when))
    return docs, facts


def expected(
    facts: list[tuple[str, str | None, str, datetime]], start: datetime, end: datetime
) -> tuple[int, int]:
    deployments = [f for f in facts if f[0] in ("deployed", "upgraded")]
    judged = failed = 0
    for _, environment, service, when in deployments:
        if not start <= when < end:
            continue
        judged += 1
        if environment is None:
            continue  # nothing can be linked to it
        later = [t for k, e, s, t in deployments if (e, s) == (environment, service) and t > when]
        upto = min(later, default=None)
        if any(
            kind in ("rolledback", "incident") and (e, s) == (environment, service)
            and t > when and (upto is None or t <= upto)
            for kind, e, s, t in facts
        ):  # fmt: skip
            failed += 1
    return judged, failed


def test_failures_match_the_definition_on_random_histories(database_url: str, db: Conn) -> None:
    ranges = [
        (B, B + timedelta(days=3)),
        (B + timedelta(hours=12), B + timedelta(hours=36)),
        (B + timedelta(hours=8), B + timedelta(hours=9)),
        (B - timedelta(days=1), B + timedelta(hours=20)),
    ]
    for seed in range(6):
        db.execute(
            "TRUNCATE collector.events, collector.event_identities, collector.subjects,"
            " collector.deployments, collector.service_state"
        )
        docs, facts = history(random.Random(seed))
        ingest(database_url, [docs])
        for start, end in ranges:
            for environments, services in ((None, None), (["prod"], None), (None, ["web"])):
                kept = [
                    f for f in facts
                    if (environments is None or f[1] in environments)
                    and (services is None or f[2] in services)
                ]  # fmt: skip
                row = db.execute(
                    "SELECT deployments, failed FROM api.dora_change_failure_rate(%s, %s, %s, %s)",
                    (start, end, environments, services),
                ).fetchone()
                assert row == expected(kept, start, end), (seed, start, end, environments)
                series = db.execute(
                    "SELECT sum(deployments), sum(failed)"
                    " FROM api.dora_change_failure_rate_series(%s, %s, '4 hours', %s, %s)",
                    (start, end, environments, services),
                ).fetchone()
                assert series is not None
                assert tuple(int(v or 0) for v in series) == row, (seed, start, end)
