"""The SQL API reference (docs/sql-api.md), generated from the catalog of a migrated database.

Every object of schema `api` is documented by its COMMENTs (the object's and each column's)
and by one example query from EXAMPLES below: a missing comment or example is an error, so the
reference can neither go stale nor have holes. `collector docs sql` writes or checks the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from collector.db.queries import queries

# One example per api object, keyed by its name (functions of `api` are not overloaded). They
# run in a test as collector_reader, so they stay valid. Grafana users replace the `now() -
# interval` bounds with $__timeFrom()::timestamptz and $__timeTo()::timestamptz.
EXAMPLES: dict[str, str] = {
    "events": """\
-- what happened in the last day, by type
select type, count(*) from api.events
where time > now() - interval '1 day'
group by type order by count(*) desc;""",
    "rejected_events": """\
-- why was something rejected?
select received_at, received_via, location, reason
from api.rejected_events order by seq desc limit 20;""",
    "duplicates": """\
-- replays per source and hour over the last day
select date_trunc('hour', received_at) as hour, received_via, sum(duplicates)
from api.duplicates where received_at > now() - interval '1 day'
group by 1, 2 order by 1, 2;""",
    "event": """\
select time, source, type, payload from api.event('271069a8-fc18-44f1-b38f-9d70a1695819');""",
    "events_by_id": """\
-- the event history lookup: unknown ids are simply absent
select id, type, time from api.events_by_id(array['7f1d3c2a-0000-4000-8000-000000000001',
                                                 'unknown-id']);""",
    "events_mentioning": """\
-- the events of the last two weeks naming a user (eventhistory's GetEventsForUser)
select id, type, time, payload
from api.events_mentioning('4c510ada-c86b-4815-8820-42cdf82c3d51', now() - interval '14 days');""",
    "schema_version": """\
select api.schema_version();""",
    "pipeline_runs": """\
-- runs, success and median duration per pipeline over the last week
select pipeline_name, count(*) as runs,
       count(*) filter (where outcome = 'success') as succeeded,
       percentile_cont(0.5) within group (order by duration_s) as median_duration_s,
       avg(queue_s) as mean_queue_s
from api.pipeline_runs
where time > now() - interval '7 days' and status = 'finished'
group by pipeline_name order by runs desc;""",
    "task_runs": """\
-- the tasks of one pipeline run, slowest first
select task_name, status, outcome, duration_s, errors
from api.task_runs where pipeline_run_id = '1842' order by duration_s desc nulls last;""",
    "builds": """\
-- build queue and build time per day
select date_trunc('day', time) as day, avg(queue_s) as queue_s, avg(duration_s) as duration_s
from api.builds where time > now() - interval '30 days'
group by 1 order by 1;""",
    "test_case_runs": """\
-- the tests that failed most this week
select test_case_name, count(*) filter (where outcome = 'failure') as failures, count(*) as runs
from api.test_case_runs
where time > now() - interval '7 days' and status = 'finished'
group by test_case_name order by failures desc limit 10;""",
    "test_suite_runs": """\
select time, test_suite_name, environment, status, outcome, duration_s
from api.test_suite_runs where time > now() - interval '1 day' order by time desc;""",
    "artifacts": """\
-- artifacts of the week and the change each was built from
select artifact_id, status, packaged_at, published_at, change_id
from api.artifacts where time > now() - interval '7 days' order by time desc;""",
    "changes": """\
-- hours from opening to merge, last 30 days
select change_id, repository, extract(epoch from merged_at - created_at) / 3600 as hours_to_merge
from api.changes
where status = 'merged' and merged_at > now() - interval '30 days'
order by hours_to_merge desc;""",
    "branches": """\
select repository, count(*) filter (where status = 'active') as active_branches
from api.branches group by repository order by repository;""",
    "repositories": """\
select name, owner, url, status, modified_at from api.repositories order by name;""",
    "environments": """\
select environment_id, name, url, modified_at from api.environments where status = 'active';""",
    "cluster_events": """\
-- node events per cluster and host in the last day
select cluster, hostname, name, count(*) from api.cluster_events
where time > now() - interval '1 day' group by 1, 2, 3 order by 4 desc;""",
    "cluster_logs": """\
-- the latest warnings and errors of one cluster
select time, hostname, name, level, message from api.cluster_logs
where cluster = 'fritz' and level in ('warn', 'error') order by time desc limit 50;""",
    "jobs": """\
-- finished jobs of the last week, longest first
select cluster, job_id, user_name, project, num_nodes, duration_s / 3600 as hours
from api.jobs where state = 'finished' and stop_time > now() - interval '7 days'
order by duration_s desc nulls last limit 20;""",
    "incidents": """\
-- open incidents, and minutes to restore of the resolved ones, last 30 days
select time, incident_id, service, environment, status, time_to_restore_s / 60 as minutes
from api.incidents where time > now() - interval '30 days' order by time desc;""",
    "tickets": """\
select ticket_id, summary, priority, assignees, created_at
from api.tickets where status = 'open' and 'bob' = any (assignees);""",
    "deployments": """\
-- what was deployed, upgraded, rolled back or removed today
select time, environment, service, action, artifact_id
from api.deployments where time > now() - interval '1 day' order by time desc;""",
    "service_state": """\
-- what runs where now
select environment, service, artifact_id, since
from api.service_state where state = 'running' order by environment, service;""",
    "dora_deployment_frequency": """\
select deployments, per_day, rating
from api.dora_deployment_frequency(now() - interval '30 days', now(),
                                   environments => array['prod']);""",
    "dora_deployment_frequency_series": """\
select time, deployments
from api.dora_deployment_frequency_series(now() - interval '12 weeks', now(), '1 week',
                                          environments => array['prod']);""",
    "dora_lead_time": """\
select median_s / 3600 as median_hours, p90_s / 3600 as p90_hours, rating
from api.dora_lead_time(now() - interval '30 days', now(), array['prod']);""",
    "dora_lead_time_series": """\
select time, median_s / 3600 as median_hours
from api.dora_lead_time_series(now() - interval '90 days', now(), '1 week', array['prod']);""",
    "dora_change_failure_rate": """\
select deployments, failed, rate, rating
from api.dora_change_failure_rate(now() - interval '30 days', now(), array['prod'],
                                  array['checkout', 'payments']);""",
    "dora_change_failure_rate_series": """\
select time, rate
from api.dora_change_failure_rate_series(now() - interval '6 months', now(), '1 month',
                                         array['prod']);""",
    "dora_time_to_restore": """\
select incidents, resolved, median_s / 60 as median_minutes, rating
from api.dora_time_to_restore(now() - interval '90 days', now(), array['prod']);""",
    "dora_time_to_restore_series": """\
select time, incidents, median_s / 60 as median_minutes
from api.dora_time_to_restore_series(now() - interval '90 days', now(), '1 week');""",
    "dora_by_service": """\
-- every service's four metrics and ratings, those deploying most first
select service, deployments, frequency_rating, lead_time_median_s / 3600 as lead_time_hours,
       lead_time_rating, failure_rate, failure_rating, restore_median_s / 60 as restore_minutes,
       restore_rating
from api.dora_by_service(now() - interval '30 days', now(), array['prod'])
order by deployments desc, service;""",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class View:
    name: str
    comment: str
    columns: list[Column]


@dataclass(frozen=True)
class Function:
    name: str
    identity: str  # api.name(argument types), as regprocedure prints it
    arguments: str  # with names and defaults
    result: str
    comment: str
    result_columns: list[Column]  # of RETURNS TABLE; empty otherwise


@dataclass(frozen=True)
class Catalog:
    schema_comment: str
    version: str
    views: list[View]
    functions: list[Function]

    def problems(self) -> list[str]:
        """What the reference would lack: comments and examples, and examples of nothing."""
        found = []
        names = {v.name for v in self.views} | {f.name for f in self.functions}
        for view in self.views:
            if not view.comment:
                found.append(f"view api.{view.name}: no COMMENT")
            found += [
                f"column api.{view.name}.{c.name}: no COMMENT"
                for c in view.columns
                if not c.comment
            ]
        found += [f"function {f.identity}: no COMMENT" for f in self.functions if not f.comment]
        found += [
            f"api.{name}: no example query in collector/docs.py EXAMPLES"
            for name in sorted(names - EXAMPLES.keys())
        ]
        found += [
            f"EXAMPLES[{name!r}] in collector/docs.py: there is no api.{name}"
            for name in sorted(EXAMPLES.keys() - names)
        ]
        return found


async def read_catalog(conn: psycopg.AsyncConnection[Any]) -> Catalog:
    q = queries()
    row = await (await conn.execute(q["api_schema"])).fetchone()
    assert row is not None
    schema_comment, version = str(row[0] or ""), str(row[1])
    columns: dict[str, list[Column]] = {}
    for view, name, type_, comment in await (await conn.execute(q["api_view_columns"])).fetchall():
        columns.setdefault(view, []).append(Column(name, type_, comment))
    views = [
        View(name, comment, columns.get(name, []))
        for name, comment in await (await conn.execute(q["api_views"])).fetchall()
    ]
    functions = [
        Function(
            name=name,
            identity=identity,
            arguments=arguments,
            result=result,
            comment=comment,
            result_columns=[Column(n, t, "") for n, t in zip(names, types, strict=True)],
        )
        for name, identity, arguments, result, comment, names, types in await (
            await conn.execute(q["api_functions"])
        ).fetchall()
    ]
    return Catalog(schema_comment, version, views, functions)


def render(catalog: Catalog) -> str:
    """The reference as Markdown; the same catalog always gives the same bytes."""
    out = [
        "# SQL API reference",
        "",
        "<!-- Generated by `collector docs sql` from the catalog of a migrated database, with "
        "the examples of collector/docs.py. Do not edit: change the COMMENTs in "
        "sql/migrations and regenerate. -->",
        "",
        f"API version **{catalog.version}** (`select api.schema_version()`). "
        + catalog.schema_comment,
        "",
        "Times are `timestamptz`; durations are seconds (`double precision`). Every example "
        "runs as `collector_reader`; in Grafana, replace `now() - interval '…'` and `now()` "
        "with `$__timeFrom()::timestamptz` and `$__timeTo()::timestamptz`.",
        "",
        "## Contents",
        "",
        "Views: " + ", ".join(_link(v.name) for v in catalog.views) + ".",
        "",
        "Functions: " + ", ".join(_link(f.name) for f in catalog.functions) + ".",
        "",
        "## Views",
    ]
    for view in catalog.views:
        out += ["", f"### api.{view.name}", "", _text(view.comment), ""]
        out += ["| column | type | description |", "| --- | --- | --- |"]
        out += [f"| `{c.name}` | `{c.type}` | {_cell(c.comment)} |" for c in view.columns]
        out += _example(view.name)
    out += ["", "## Functions"]
    for function in catalog.functions:
        out += ["", f"### api.{function.name}", ""]
        out += [
            "```sql",
            f"api.{function.name}({function.arguments})",
            f"  RETURNS {function.result}",
            "```",
        ]
        out += ["", _text(function.comment)]
        if function.result.startswith("SETOF api."):
            out += ["", f"Rows like {_link(function.result.removeprefix('SETOF api.'))}."]
        if function.result_columns:
            out += ["", "| result column | type |", "| --- | --- |"]
            out += [f"| `{c.name}` | `{c.type}` |" for c in function.result_columns]
        out += _example(function.name)
    return "\n".join(out) + "\n"


def _example(name: str) -> list[str]:
    example = EXAMPLES.get(name)
    return ["", "```sql", example, "```"] if example else []


def _link(name: str) -> str:
    # GitHub's anchor of a heading "api.name": lower case, the dot dropped.
    return f"[api.{name}](#api{name.replace('.', '')})"


def _text(comment: str) -> str:
    return " ".join(comment.split())


def _cell(comment: str) -> str:
    return _text(comment).replace("|", "\\|")
