"""The DORA functions of `api` against a generated week of deliveries, with exact expected values.

The week (Monday 2025-01-06 to the next Monday, UTC): two services (api, web) deployed to prod
and staging from artifacts built from merged changes — or without a change, or from an
abandoned one, or unknown — a rollback, incidents that follow deployments, one in staging, one
never resolved, and events just outside the week. It is ingested in time order, latest first
one event per batch (a rollback before the deployment it follows, a resolved before its
detected), and shuffled with replays: every order must give the same values.

Percentiles are PostgreSQL's percentile_cont; `percentile` below computes them the same way.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.errors import InvalidParameterValue

from tests.integration.cdevents_factory import Doc, cdevent, ingest, rows

Conn = psycopg.Connection[Any]

B = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
WEEK = (B, B + timedelta(days=7))
H = 3600.0
DAY = 86400.0


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    return B + timedelta(days=days, hours=hours, minutes=minutes)


def percentile(values: list[float], p: float) -> float:
    """percentile_cont: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low = math.floor(position)
    if low + 1 >= len(ordered):
        return ordered[low]
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (position - low)


def change(predicate: str, change_id: str, when: datetime) -> Doc:
    return cdevent(
        "0.5", "change", predicate, change_id, when,
        {"repository": {"id": "shop", "source": "/scm"}}, source="/scm",
    )  # fmt: skip


def artifact(predicate: str, artifact_id: str, when: datetime, change_id: str | None = None) -> Doc:
    content = {"change": {"id": change_id, "source": "/scm"}} if change_id else {}
    return cdevent("0.5", "artifact", predicate, artifact_id, when, content, source="/registry")


def service(
    predicate: str, name: str, environment: str, when: datetime, artifact_id: str | None = None,
    *, spec: str = "0.5", key: str = "",
) -> Doc:  # fmt: skip
    content: Doc = {"environment": {"id": environment, "source": "/k8s"}}
    if spec == "0.4":
        content = {"environment": environment}  # some producers send a plain string
    if artifact_id:
        content["artifactId"] = artifact_id
    return cdevent(
        spec, "service", predicate, name, when, content, source="/cd",
        event_id=f"{name}/{environment}/{predicate}/{when.isoformat()}{key}",
    )  # fmt: skip


def incident(predicate: str, incident_id: str, environment: str, name: str, when: datetime) -> Doc:
    content = {"environment": {"id": environment}, "service": {"id": name}}
    return cdevent("0.5", "incident", predicate, incident_id, when, content, source="/monitoring")


def week() -> list[Doc]:
    return [
        # Changes and the artifacts built from them.
        change("created", "c1", at(-1)),
        change("merged", "c1", at(hours=-2)),
        change("merged", "c2", at(1)),
        change("created", "c5", at(5)),
        change("abandoned", "c5", at(5, 6)),
        artifact("packaged", "a1", at(hours=-1), "c1"),
        artifact("published", "a1", at(minutes=-30)),
        artifact("packaged", "a2", at(1, 1), "c2"),
        artifact("published", "a2", at(1, 2)),
        artifact("packaged", "a3", at(2)),  # no change: lead time from publication
        artifact("published", "a3", at(2, 1)),
        artifact("packaged", "a4", at(3)),  # never published: lead time from packaging
        artifact("packaged", "a5", at(5, 10), "c5"),  # its change was abandoned
        artifact("published", "a5", at(5, 12)),
        # The day before: a deployment, rolled back, and an incident (outside the week).
        service("deployed", "api", "prod", at(-1), "a0"),
        service("rolledback", "api", "prod", at(-1, 1), "a-old"),
        incident("detected", "i0", "prod", "api", at(hours=-12)),
        incident("resolved", "i0", "prod", "api", at(minutes=30)),
        # The week.
        service("deployed", "api", "staging", at(minutes=30), "a1"),
        service("deployed", "api", "prod", at(hours=1), "a1", spec="0.4"),
        service("upgraded", "api", "prod", at(1, 3), "a2"),
        service("rolledback", "api", "prod", at(1, 4), "a1"),
        service("deployed", "web", "prod", at(2, 2), "a3"),
        incident("detected", "i1", "prod", "web", at(2, 5)),
        incident("resolved", "i1", "prod", "web", at(2, 6, 30)),
        service("deployed", "web", "prod", at(4), "a4"),
        incident("reported", "i2", "staging", "web", at(4, 2)),  # reported before detected
        incident("detected", "i2", "staging", "web", at(4, 3)),
        incident("resolved", "i2", "staging", "web", at(4, 5)),
        service("deployed", "api", "prod", at(5), "a9"),  # unknown artifact: no lead time
        incident("detected", "i3", "prod", "api", at(5, 1)),  # never resolved
        service("deployed", "web", "prod", at(6), "a5"),
        service("removed", "web", "staging", at(6, 1)),
        # The next Monday.
        service("deployed", "api", "prod", at(7, 1), "a2"),
    ]


# Lead times of the week's deployments: 9000 s (api staging: c1 merged 2.5 h before),
# 10800 (api prod, c1), 10800 (api prod upgrade, c2 merged 3 h before), 3600 (web, a3
# published 1 h before), 86400 (web, a4 packaged a day before), 43200 (web, a5 published 12 h
# before: c5 never merged); api's deployment of unknown a9 has none.
LEAD_TIMES = [9000.0, 10800.0, 10800.0, 3600.0, 86400.0, 43200.0]
PROD_LEAD_TIMES = [10800.0, 10800.0, 3600.0, 86400.0, 43200.0]


def one(conn: Conn, query: str, *params: Any) -> dict[str, Any]:
    [row] = rows(conn, query, params)
    return row


def series(conn: Conn, function: str, *params: Any) -> list[tuple[Any, ...]]:
    return [
        tuple(r.values())
        for r in rows(conn, f"SELECT * FROM api.{function}(%s, %s, %s, %s, %s)", params)
    ]


def day(n: int) -> datetime:
    return at(n)


def check_the_week(conn: Conn) -> None:
    frequency = "SELECT * FROM api.dora_deployment_frequency(%s, %s, %s, %s)"
    assert one(conn, frequency, *WEEK, None, None) == {
        "deployments": 7,
        "services_deployed": 2,
        "days": 7.0,
        "per_day": 1.0,
        "per_service_per_day": 0.5,
        "rating": "high",
    }
    assert one(conn, frequency, *WEEK, ["prod"], None) == {
        "deployments": 6,
        "services_deployed": 2,
        "days": 7.0,
        "per_day": 6 / 7,
        "per_service_per_day": 6 / 7 / 2,
        "rating": "high",
    }
    assert one(conn, frequency, *WEEK, None, ["web"])["deployments"] == 3
    # NULL and empty arrays both mean "all".
    assert one(conn, frequency, *WEEK, [], []) == one(conn, frequency, *WEEK, None, None)

    lead = "SELECT * FROM api.dora_lead_time(%s, %s, %s, %s)"
    assert one(conn, lead, *WEEK, None, None) == {
        "deployments": 6,
        "median_s": 10800.0,
        "p90_s": percentile(LEAD_TIMES, 0.9),
        "mean_s": sum(LEAD_TIMES) / 6,
        "rating": "elite",
    }
    assert one(conn, lead, *WEEK, ["prod"], None) == {
        "deployments": 5,
        "median_s": 10800.0,
        "p90_s": percentile(PROD_LEAD_TIMES, 0.9),
        "mean_s": sum(PROD_LEAD_TIMES) / 5,
        "rating": "elite",
    }
    assert one(conn, lead, *WEEK, ["staging"], ["web"]) == {
        "deployments": 0,
        "median_s": None,
        "p90_s": None,
        "mean_s": None,
        "rating": None,
    }

    # Failed: api's upgrade (rolled back), web's first deployment (incident i1) and api's
    # deployment of a9 (incident i3, before the next Monday's deployment).
    failure = "SELECT * FROM api.dora_change_failure_rate(%s, %s, %s, %s)"
    assert one(conn, failure, *WEEK, None, None) == {
        "deployments": 7,
        "failed": 3,
        "rate": 3 / 7,
        "rating": "low",
    }
    assert one(conn, failure, *WEEK, ["prod"], None) == {
        "deployments": 6,
        "failed": 3,
        "rate": 0.5,
        "rating": "low",
    }
    assert one(conn, failure, *WEEK, None, ["web"]) == {
        "deployments": 3,
        "failed": 1,
        "rate": 1 / 3,
        "rating": "low",
    }
    # The staging incident i2 is not prod's; api's staging deployment did not fail.
    assert one(conn, failure, *WEEK, ["staging"], None) == {
        "deployments": 1,
        "failed": 0,
        "rate": 0.0,
        "rating": "elite",
    }
    assert one(conn, failure, at(3), at(4), None, None) == {
        "deployments": 0,
        "failed": 0,
        "rate": None,
        "rating": None,
    }

    # Incidents that began in the week: i1 (1.5 h), i2 (3 h from its report), i3 (open);
    # i0 began the day before.
    restore = "SELECT * FROM api.dora_time_to_restore(%s, %s, %s, %s)"
    assert one(conn, restore, *WEEK, None, None) == {
        "incidents": 3,
        "resolved": 2,
        "median_s": 8100.0,
        "p90_s": percentile([5400.0, 10800.0], 0.9),
        "rating": "high",
    }
    assert one(conn, restore, *WEEK, ["prod"], None) == {
        "incidents": 2,
        "resolved": 1,
        "median_s": 5400.0,
        "p90_s": 5400.0,
        "rating": "high",
    }
    assert one(conn, restore, *WEEK, None, ["api"]) == {
        "incidents": 1,
        "resolved": 0,
        "median_s": None,
        "p90_s": None,
        "rating": None,
    }

    # Daily series: one row per day, empty days included.
    days = [day(n) for n in range(7)]
    assert series(conn, "dora_deployment_frequency_series", *WEEK, "1 day", None, None) == list(
        zip(days, [2, 1, 1, 0, 1, 1, 1], strict=True)
    )
    assert series(conn, "dora_deployment_frequency_series", *WEEK, "1 day", None, ["web"]) == list(
        zip(days, [0, 0, 1, 0, 1, 0, 1], strict=True)
    )
    assert series(conn, "dora_lead_time_series", *WEEK, "1 day", None, None) == list(
        zip(
            days,
            [2, 1, 1, 0, 1, 0, 1],
            [9900.0, 10800.0, 3600.0, None, 86400.0, None, 43200.0],
            strict=True,
        )
    )
    assert series(conn, "dora_change_failure_rate_series", *WEEK, "1 day", None, None) == list(
        zip(
            days,
            [2, 1, 1, 0, 1, 1, 1],
            [0, 1, 1, 0, 0, 1, 0],
            [0.0, 1.0, 1.0, None, 0.0, 1.0, 0.0],
            strict=True,
        )
    )
    assert series(conn, "dora_time_to_restore_series", *WEEK, "1 day", None, None) == list(
        zip(
            days,
            [0, 0, 1, 0, 1, 1, 0],
            [0, 0, 1, 0, 1, 0, 0],
            [None, None, 5400.0, None, 10800.0, None, None],
            strict=True,
        )
    )
    assert series(conn, "dora_time_to_restore_series", *WEEK, "1 day", ["staging"], None) == list(
        zip(days, [0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0, 0],
            [None, None, None, None, 10800.0, None, None], strict=True)
    )  # fmt: skip

    # Other buckets: a week (Monday-aligned), a range not aligned to days (the first bucket
    # starts before it: only what is in the range counts), months (Jan holds the day before and
    # the next Monday too), quarters.
    assert series(conn, "dora_deployment_frequency_series", *WEEK, "1 week", None, None) == [(B, 7)]
    assert series(
        conn, "dora_deployment_frequency_series", at(hours=12), at(2, 12), "1 day", None, None
    ) == [(day(0), 0), (day(1), 1), (day(2), 1)]
    jan, feb, mar = (datetime(2025, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    assert series(conn, "dora_deployment_frequency_series", jan, mar, "1 month", None, None) == [
        (jan, 9),
        (feb, 0),
    ]
    assert series(
        conn, "dora_change_failure_rate_series", jan, mar, "1 month", ["prod"], ["api"]
    ) == [(jan, 5, 3, 0.6), (feb, 0, 0, None)]
    q2 = datetime(2025, 4, 1, tzinfo=UTC)
    assert series(
        conn, "dora_deployment_frequency_series", feb, datetime(2025, 7, 1, tzinfo=UTC),
        "3 months", None, None,
    ) == [(jan, 0), (q2, 0)]  # fmt: skip


def in_time_order(docs: list[Doc]) -> list[list[Doc]]:
    return [sorted(docs, key=lambda d: d["context"]["timestamp"])]


def latest_first_one_by_one(docs: list[Doc]) -> list[list[Doc]]:
    return [[d] for d in sorted(docs, key=lambda d: d["context"]["timestamp"], reverse=True)]


def shuffled_with_replays(docs: list[Doc]) -> list[list[Doc]]:
    shuffled = random.Random(7).sample(docs, len(docs))
    batches = [shuffled[i : i + 5] for i in range(0, len(shuffled), 5)]
    return [*batches, shuffled[::3], docs]


@pytest.mark.parametrize(
    "order",
    [in_time_order, latest_first_one_by_one, shuffled_with_replays],
    ids=lambda f: f.__name__,
)
def test_the_week_in_any_order(
    db: Conn, database_url: str, order: Callable[[list[Doc]], list[list[Doc]]]
) -> None:
    docs = week()
    assert sum(r.stored for r in ingest(database_url, order(docs))) == len(docs)
    check_the_week(db)


def test_the_week_with_the_session_in_another_time_zone(db: Conn, database_url: str) -> None:
    # Buckets are aligned in UTC whatever the session's time zone (DST included).
    ingest(database_url, [week()])
    db.execute("SET TimeZone = 'America/New_York'")
    check_the_week(db)


def test_ratings(db: Conn, database_url: str) -> None:
    docs: list[Doc] = []
    # Frequency: svc deployed twice on Monday morning; the range decides the rating.
    docs += [service("deployed", "svc", "prod", at(hours=h), key="f") for h in (1, 2)]
    # Lead time: on day d, a deployment whose artifact was published lead[d] before.
    leads = {10: 3600, 11: 2 * 86400, 12: 10 * 86400, 13: 40 * 86400}
    for d, lead in leads.items():
        docs.append(artifact("published", f"lead-{d}", at(d) - timedelta(seconds=lead)))
        docs.append(service("deployed", f"lead-{d}", "prod", at(d), f"lead-{d}"))
    # Failure rate: per service, n deployments in days 20-21 and a rollback after the last.
    for name, n, rolled_back in (("e", 1, False), ("h", 12, True), ("m", 8, True), ("l", 2, True)):
        docs += [service("deployed", name, "prod", at(20, k), key="r") for k in range(n)]
        if rolled_back:
            docs.append(service("rolledback", name, "prod", at(21)))
    # Time to restore: on day d, an incident resolved after restore[d].
    restores = {30: 1800, 31: 2 * 3600, 32: 2 * 86400, 33: 10 * 86400}
    for d, seconds in restores.items():
        docs.append(incident("detected", f"inc-{d}", "prod", "x", at(d)))
        docs.append(
            incident("resolved", f"inc-{d}", "prod", "x", at(d) + timedelta(seconds=seconds))
        )
    ingest(database_url, [docs])

    def rating(
        function: str, start: datetime, end: datetime, services: list[str] | None = None
    ) -> Any:
        query = f"SELECT rating FROM api.{function}(%s, %s, NULL, %s)"
        return one(db, query, start, end, services)["rating"]

    frequency = "dora_deployment_frequency"
    assert [rating(frequency, at(0), at(days), ["svc"]) for days in (1, 7, 30, 90)] == [
        "elite",  # 2 a day
        "high",  # 2 a week
        "medium",  # 2 in 30 days
        "low",  # 2 in 90 days
    ]
    assert rating(frequency, at(2), at(3)) == "low"  # nothing deployed
    assert [rating("dora_lead_time", at(d), at(d + 1)) for d in leads] == [
        "elite",  # 1 hour
        "high",  # 2 days
        "medium",  # 10 days
        "low",  # 40 days
    ]
    assert [rating("dora_change_failure_rate", at(20), at(21), [s]) for s in "ehml"] == [
        "elite",  # 0 of 1
        "high",  # 1 of 12
        "medium",  # 1 of 8
        "low",  # 1 of 2
    ]
    assert [rating("dora_time_to_restore", at(d), at(d + 1)) for d in restores] == [
        "elite",  # 30 minutes
        "high",  # 2 hours
        "medium",  # 2 days
        "low",  # 10 days
    ]


BY_SERVICE = """
    SELECT d.service, f.deployments, f.per_day, f.rating, l.deployments, l.median_s, l.p90_s,
           l.mean_s, l.rating, c.failed, c.rate, c.rating, r.incidents, r.resolved, r.median_s,
           r.p90_s, r.rating
    FROM (SELECT DISTINCT service FROM api.deployments
          WHERE time >= %(from)s AND time < %(to)s
            AND (coalesce(cardinality(%(environments)s::text[]), 0) = 0
                 OR environment = ANY (%(environments)s::text[]))) AS d,
         api.dora_deployment_frequency(%(from)s, %(to)s, %(environments)s, ARRAY[d.service]) f,
         api.dora_lead_time(%(from)s, %(to)s, %(environments)s, ARRAY[d.service]) l,
         api.dora_change_failure_rate(%(from)s, %(to)s, %(environments)s, ARRAY[d.service]) c,
         api.dora_time_to_restore(%(from)s, %(to)s, %(environments)s, ARRAY[d.service]) r
    ORDER BY d.service
"""


def test_by_service_gives_each_service_its_single_values(db: Conn, database_url: str) -> None:
    """api.dora_by_service is the four functions called for each service alone (what the
    Grafana panel did, one call per service and metric), in one call."""
    ingest(database_url, [week()])
    # The week, a day (web's removal in staging lists web without a deployment), ranges with
    # nothing or only what lies around the week, and the month.
    ranges = [WEEK, (at(6), at(7)), (at(3), at(4)), (at(-1), at(0)), (at(7), at(8))]
    ranges.append((datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)))
    for start, end in ranges:
        for environments in (None, [], ["prod"], ["staging"], ["prod", "staging"], ["nowhere"]):
            params = {"from": start, "to": end, "environments": environments}
            singles = db.execute(BY_SERVICE, params).fetchall()
            by_service = db.execute(
                "SELECT * FROM api.dora_by_service(%(from)s, %(to)s, %(environments)s)", params
            ).fetchall()
            assert by_service == singles, (start, end, environments)
            filtered = db.execute(
                "SELECT * FROM api.dora_by_service(%s, %s, %s, ARRAY['web', 'other'])",
                (start, end, environments),
            ).fetchall()
            assert filtered == [row for row in singles if row[0] == "web"]

    assert rows(db, "SELECT * FROM api.dora_by_service(%s, %s, ARRAY['prod'])", WEEK) == [
        {
            "service": "api", "deployments": 3, "per_day": 3 / 7, "frequency_rating": "high",
            "lead_time_deployments": 2, "lead_time_median_s": 10800.0,
            "lead_time_p90_s": 10800.0, "lead_time_mean_s": 10800.0, "lead_time_rating": "elite",
            "failed": 2, "failure_rate": 2 / 3, "failure_rating": "low", "incidents": 1,
            "resolved": 0, "restore_median_s": None, "restore_p90_s": None,
            "restore_rating": None,
        },
        {
            "service": "web", "deployments": 3, "per_day": 3 / 7, "frequency_rating": "high",
            "lead_time_deployments": 3, "lead_time_median_s": 43200.0,
            "lead_time_p90_s": percentile([3600.0, 86400.0, 43200.0], 0.9),
            "lead_time_mean_s": (3600.0 + 86400.0 + 43200.0) / 3, "lead_time_rating": "elite",
            "failed": 1, "failure_rate": 1 / 3, "failure_rating": "low", "incidents": 1,
            "resolved": 1, "restore_median_s": 5400.0, "restore_p90_s": 5400.0,
            "restore_rating": "high",
        },
    ]  # fmt: skip
    # A service listed for its removal alone: no deployment, so no rate.
    assert db.execute(
        "SELECT service, deployments, per_day, frequency_rating, failure_rate, failure_rating"
        " FROM api.dora_by_service(%s, %s, ARRAY['staging'])",
        (at(6), at(7)),
    ).fetchall() == [("web", 0, 0.0, "low", None, None)]
    with pytest.raises(InvalidParameterValue, match=r"to_time .* must be after from_time"):
        db.execute("SELECT * FROM api.dora_by_service(%s, %s)", (at(1), at(0)))


def test_no_plan_compares_every_deployment_with_every_artifact(db: Conn, database_url: str) -> None:
    """On tables never analysed (autovacuum off, or right after a bulk load) the planner
    expects a row or two from each step. Lead times and failures joined two such steps, the
    deployments and their artifacts or their failures, in a nested loop comparing each row
    with each: 25-43 s for 90 days of `collector demo`. Now the work grows with the rows."""
    for table in ("subjects", "deployments"):
        db.execute(f"ALTER TABLE collector.{table} SET (autovacuum_enabled = false)")
    docs: list[Doc] = []
    for n in range(120):  # 120 artifacts, each deployed to staging then prod: 240 deployments
        name, when = ("api", "web")[n % 2], at(hours=n)
        docs.append(artifact("packaged", f"p{n}", when - timedelta(hours=1), f"c{n}"))
        docs.append(change("merged", f"c{n}", when - timedelta(hours=2)))
        docs.append(service("deployed", name, "staging", when, f"p{n}"))
        docs.append(service("deployed", name, "prod", when + timedelta(minutes=30), f"p{n}"))
        if n % 6 == 0:  # a failure after every sixth
            docs.append(service("rolledback", name, "prod", when + timedelta(minutes=40)))
    ingest(database_url, [docs])
    assert db.execute(
        "SELECT count(*) FROM pg_class WHERE oid IN ('collector.subjects'::regclass,"
        " 'collector.deployments'::regclass) AND reltuples < 0"
    ).fetchone() == (2,), "the tables were analysed: the planner would know better"
    deployments = 240
    window = (at(-1), at(7))
    compared = {}  # rows a join read and dropped, per building block (as the api functions use it)
    for name, query in (
        ("lead times", "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lead_time_s)"
         " FROM collector.dora_lead_times(%s, %s, NULL, NULL) WHERE lead_time_s IS NOT NULL"),
        ("failures", "SELECT count(*), count(*) FILTER (WHERE failed)"
         " FROM collector.dora_failures(%s, %s, NULL, NULL)"),
    ):  # fmt: skip
        [(plan,)] = db.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", window).fetchall()
        compared[name] = sum(
            node.get("Rows Removed by Join Filter", 0) * node["Actual Loops"]
            for node in nodes(plan[0]["Plan"])
        )
    assert all(n < deployments for n in compared.values()), compared
    assert db.execute(
        "SELECT deployments, median_s FROM api.dora_lead_time(%s, %s)", window
    ).fetchone() == (deployments, 3600 * 2 + 1800 / 2)
    assert db.execute(
        "SELECT deployments, failed FROM api.dora_change_failure_rate(%s, %s)", window
    ).fetchone() == (deployments, 20)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


SERIES = [
    "dora_deployment_frequency_series",
    "dora_lead_time_series",
    "dora_change_failure_rate_series",
    "dora_time_to_restore_series",
]
SINGLE = ["dora_deployment_frequency", "dora_lead_time", "dora_change_failure_rate"]


def test_an_empty_or_reversed_range_is_refused(db: Conn) -> None:
    queries = [f"SELECT * FROM api.{f}(%s, %s)" for f in [*SINGLE, "dora_time_to_restore"]]
    queries += [f"SELECT * FROM api.{f}(%s, %s, '1 day')" for f in SERIES]
    for query in queries:
        for start, end in ((at(1), at(0)), (at(0), at(0))):
            with pytest.raises(InvalidParameterValue, match=r"to_time .* must be after from_time"):
                db.execute(query, (start, end))


def test_a_bad_bucket_is_refused_by_name(db: Conn) -> None:
    for function in SERIES:
        for bucket in ("-1 day", "1 month 2 days"):
            with pytest.raises(InvalidParameterValue, match=r"bucket .*: use a positive interval"):
                db.execute(f"SELECT * FROM api.{function}(%s, %s, %s::interval)", (*WEEK, bucket))
        for missing in ("0", None):
            with pytest.raises(InvalidParameterValue, match=r"^bucket is required: an interval"):
                db.execute(f"SELECT * FROM api.{function}(%s, %s, %s::interval)", (*WEEK, missing))
