-- Plans that stay linear without statistics, DORA per service in one call, and lookups by id
-- that find a ClusterCockpit event whatever else shares its id. api schema version 1.3.
--
-- DORA: on tables never analysed (autovacuum off, or just after a bulk load such as `collector
-- demo`), the planner expects a range to hold a row or two, and joined two materialised sets of
-- thousands of rows in a nested loop comparing each row with each: 25-43 s for the lead time of
-- 90 days of demo data (18,580 deployments x 6,346 artifacts), past Grafana's 30 s timeout;
-- 0.2 s once analysed. The change failure rate did the same (18,580 x 530 failed deployments:
-- 1.8 s). Neither joins two such sets any more: lead times group the deployments by artifact,
-- look each artifact up by index and unfold the group again; failures are marked in the one
-- sorted timeline per service and environment. What remains are index probes driven by a set,
-- sorts and aggregates: linear (or n log n) whatever the estimates.
--
-- The Grafana panel "DORA ratings per service" called the four functions once per service:
-- 7.5 s for 200 services over 30 days. api.dora_by_service gives every service's metrics and
-- ratings in one pass over each building block. The ratings are functions now, so that the
-- single values and the per-service ones cannot drift apart.
--
-- Lookups by id: collector.partition_scope_events_by_id skipped every id the identity table
-- knew, so when a ClusterCockpit id was also the id of another family's event (a ClusterCockpit
-- event forwarded as a CloudEvent into the same database keeps its id, source, type and time),
-- only the copy was returned. Known ids are now probed in the ClusterCockpit families at their
-- identities' times: one partition per family, as for the other families. And the windows that
-- search unknown ids took the ids as an array literal, whose every element the planner
-- estimated against every partition's statistics: 10,000 unknown ids cost seconds of planning
-- before any row was read. They are joined as a set now. And without statistics, the identity
-- table was read whole for a hundred ids: it is probed once per id now.

-- DORA ---------------------------------------------------------------------------------------

CREATE FUNCTION collector.dora_frequency_rating(per_service_per_day double precision) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN per_service_per_day >= 1 THEN 'elite'
                WHEN per_service_per_day >= 1.0 / 7 THEN 'high'
                WHEN per_service_per_day >= 1.0 / 30 THEN 'medium' ELSE 'low' END
$$;

CREATE FUNCTION collector.dora_lead_time_rating(median_s double precision) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN median_s IS NULL THEN NULL WHEN median_s < 86400 THEN 'elite'
                WHEN median_s < 7 * 86400 THEN 'high' WHEN median_s < 30 * 86400 THEN 'medium'
                ELSE 'low' END
$$;

CREATE FUNCTION collector.dora_failure_rating(rate double precision) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN rate IS NULL THEN NULL WHEN rate <= 0.05 THEN 'elite'
                WHEN rate <= 0.10 THEN 'high' WHEN rate <= 0.15 THEN 'medium' ELSE 'low' END
$$;

CREATE FUNCTION collector.dora_restore_rating(median_s double precision) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN median_s IS NULL THEN NULL WHEN median_s < 3600 THEN 'elite'
                WHEN median_s < 86400 THEN 'high' WHEN median_s < 7 * 86400 THEN 'medium'
                ELSE 'low' END
$$;

-- The building blocks now also say which service each row is of. (The functions of `api` that
-- call them are plpgsql: their queries are planned when run, so they take the new ones.)
DROP FUNCTION collector.dora_lead_times(timestamptz, timestamptz, text[], text[]);
DROP FUNCTION collector.dora_failures(timestamptz, timestamptz, text[], text[]);
DROP FUNCTION collector.dora_restores(timestamptz, timestamptz, text[], text[]);

-- Lead time of each deployment: from the merge of the change its artifact was packaged from
-- (the artifact's `change` reference: id, and source when given), else from the artifact's
-- publication, else from its packaging, to the deployment. Null when the artifact is unknown.
-- The deployments are grouped by artifact, each artifact is looked up once (however often it
-- was deployed: dev, staging, production), and each group is unfolded again: no join between
-- the deployments and the lookups, which a planner without statistics made a nested loop.
CREATE FUNCTION collector.dora_lead_times(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, service text, lead_time_s double precision)
LANGUAGE sql STABLE AS $$
    SELECT d.time, d.service,
           extract(epoch FROM d.time - coalesce(c.merged_at, a.published_at, a.packaged_at))::double precision
    FROM (SELECT k.artifact_id, array_agg(k.time) AS times, array_agg(k.service) AS names
          FROM collector.dora_deployments(from_time, to_time, environments, services) k
          GROUP BY k.artifact_id) AS g
    LEFT JOIN LATERAL (
        SELECT (a.predicate_times->>'published')::timestamptz AS published_at,
               (a.predicate_times->>'packaged')::timestamptz AS packaged_at,
               a.content->'change'->>'id' AS change_id,
               a.content->'change'->>'source' AS change_source
        FROM collector.subjects a
        WHERE a.subject_type = 'artifact' AND a.subject_id = g.artifact_id
        ORDER BY a.first_time LIMIT 1
    ) a ON true
    LEFT JOIN LATERAL (
        SELECT (c.predicate_times->>'merged')::timestamptz AS merged_at
        FROM collector.subjects c
        WHERE c.subject_type = 'change' AND c.subject_id = a.change_id
          AND (a.change_source IS NULL OR c.subject_source = a.change_source)
        ORDER BY c.first_time LIMIT 1
    ) c ON true
    CROSS JOIN LATERAL unnest(g.times, g.names) AS d("time", service)
$$;

-- Whether each deployment failed: before the next deployment of the same service to the same
-- environment, that service was rolled back there, or an incident was detected or reported
-- for it there (the incident's first event falls after the deployment, up to the next one).
-- Set-based, without a probe per deployment: the deployments of the range and the failures
-- that can belong to them (from the range's start up to the first deployment after it) in one
-- timeline per service and environment, where each failure goes to the latest deployment
-- strictly before it; a deployment failed when a failure went to its time. Both steps are
-- window functions over that timeline (no join back to the deployments).
CREATE FUNCTION collector.dora_failures(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, service text, failed boolean)
LANGUAGE sql STABLE AS $$
    WITH deployed AS MATERIALIZED (
        SELECT d.environment, d.service, d.time
        FROM collector.dora_deployments(from_time, to_time, environments, services) d
    ), pairs AS MATERIALIZED (
        -- Each service and environment deployed in the range, with its first deployment at or
        -- after the range's end: later failures belong to that one.
        SELECT k.environment, k.service, min(x.time) AS next_time
        FROM (SELECT DISTINCT environment, service FROM deployed WHERE environment IS NOT NULL) k
        LEFT JOIN collector.deployments x
          ON x.environment = k.environment AND x.service = k.service AND x.time >= to_time
         AND x.action IN ('deployed', 'upgraded')
        GROUP BY k.environment, k.service
    ), failures AS (
        SELECT r.environment, r.service, r.time
        FROM collector.deployments r
        JOIN pairs p ON p.environment = r.environment AND p.service = r.service
        WHERE r.action = 'rolledback' AND r.time > from_time
          AND (p.next_time IS NULL OR r.time <= p.next_time)
        UNION ALL
        SELECT p.environment, p.service, i.first_time
        FROM collector.subjects i
        JOIN pairs p ON p.service = i.content->'service'->>'id'
                    AND p.environment = i.content->'environment'->>'id'
        WHERE i.subject_type = 'incident' AND i.first_time > from_time
          AND (p.next_time IS NULL OR i.first_time <= p.next_time)
    ), timeline AS (
        -- At equal times a failure sorts before a deployment: it is not after that one.
        SELECT t.environment, t.service, t.time, t.is_deployment,
               max(t.time) FILTER (WHERE t.is_deployment) OVER (
                   PARTITION BY t.environment, t.service ORDER BY t.time, t.is_deployment
                   ROWS UNBOUNDED PRECEDING) AS deployed_at
        FROM (SELECT environment, service, time, true AS is_deployment FROM deployed
              WHERE environment IS NOT NULL
              UNION ALL
              SELECT environment, service, time, false FROM failures) AS t
    )
    SELECT m.time, m.service, m.failed
    FROM (SELECT l.time, l.service, l.is_deployment,
                 bool_or(NOT l.is_deployment) OVER (
                     PARTITION BY l.environment, l.service, l.deployed_at) AS failed
          FROM timeline l) AS m
    WHERE m.is_deployment
    UNION ALL
    SELECT d.time, d.service, false FROM deployed d WHERE d.environment IS NULL
$$;

-- Time to restore of each incident that began in the range (its first event in the range):
-- from detected (or reported, whichever came first) to resolved; null while unresolved.
CREATE FUNCTION collector.dora_restores(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, service text, restore_s double precision)
LANGUAGE sql STABLE AS $$
    SELECT i.first_time, i.content->'service'->>'id',
           extract(epoch FROM (i.predicate_times->>'resolved')::timestamptz
               - least((i.predicate_times->>'detected')::timestamptz,
                       (i.predicate_times->>'reported')::timestamptz))::double precision
    FROM collector.subjects i
    WHERE i.subject_type = 'incident' AND i.first_time >= from_time AND i.first_time < to_time
      AND (coalesce(cardinality(environments), 0) = 0
           OR i.content->'environment'->>'id' = ANY (environments))
      AND (coalesce(cardinality(services), 0) = 0 OR i.content->'service'->>'id' = ANY (services))
$$;

-- The four single values, as in 0002 but rated by the functions above.
CREATE OR REPLACE FUNCTION api.dora_deployment_frequency(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, services_deployed bigint, days double precision,
                 per_day double precision, per_service_per_day double precision, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT n, k, span, n / span, n / span / greatest(k, 1),
               collector.dora_frequency_rating(n / span / greatest(k, 1))
        FROM (SELECT count(*) AS n, count(DISTINCT d.service) AS k,
                     (extract(epoch FROM to_time - from_time) / 86400)::double precision AS span
              FROM collector.dora_deployments(from_time, to_time, environments, services) d
              WHERE collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

CREATE OR REPLACE FUNCTION api.dora_lead_time(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, median_s double precision, p90_s double precision,
                 mean_s double precision, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT n, m, p, a, collector.dora_lead_time_rating(m)
        FROM (SELECT count(*) AS n,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY l.lead_time_s) AS m,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY l.lead_time_s) AS p,
                     avg(l.lead_time_s) AS a
              FROM collector.dora_lead_times(from_time, to_time, environments, services) l
              WHERE l.lead_time_s IS NOT NULL AND collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

CREATE OR REPLACE FUNCTION api.dora_change_failure_rate(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, failed bigint, rate double precision, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT n, f, r, collector.dora_failure_rating(r)
        FROM (SELECT count(*) AS n, count(*) FILTER (WHERE f.failed) AS f,
                     (count(*) FILTER (WHERE f.failed))::double precision / nullif(count(*), 0) AS r
              FROM collector.dora_failures(from_time, to_time, environments, services) f
              WHERE collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

CREATE OR REPLACE FUNCTION api.dora_time_to_restore(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (incidents bigint, resolved bigint, median_s double precision,
                 p90_s double precision, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT n, k, m, p, collector.dora_restore_rating(m)
        FROM (SELECT count(*) AS n, count(r.restore_s) AS k,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY r.restore_s) AS m,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY r.restore_s) AS p
              FROM collector.dora_restores(from_time, to_time, environments, services) r
              WHERE collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

-- Every service's metrics at once: the rows of each building block, tagged with what they are,
-- in one stream grouped by service (a sort or a hash, never a join whose plan hangs on
-- estimates). Each value is what the single-value function gives for that service alone.
CREATE FUNCTION api.dora_by_service(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (service text, deployments bigint, per_day double precision,
                 frequency_rating text, lead_time_deployments bigint,
                 lead_time_median_s double precision, lead_time_p90_s double precision,
                 lead_time_mean_s double precision, lead_time_rating text, failed bigint,
                 failure_rate double precision, failure_rating text, incidents bigint,
                 resolved bigint, restore_median_s double precision,
                 restore_p90_s double precision, restore_rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
    span double precision := extract(epoch FROM to_time - from_time) / 86400;
BEGIN
    PERFORM collector.dora_arguments(from_time, to_time);
    RETURN QUERY
        SELECT g.service, g.n, g.n / span, collector.dora_frequency_rating(g.n / span),
               g.lead_n, g.lead_m, g.lead_p, g.lead_a, collector.dora_lead_time_rating(g.lead_m),
               g.failed_n, g.failed_n::double precision / nullif(g.n, 0),
               collector.dora_failure_rating(g.failed_n::double precision / nullif(g.n, 0)),
               g.incident_n, g.resolved_n, g.restore_m, g.restore_p,
               collector.dora_restore_rating(g.restore_m)
        FROM (SELECT x.service,
                     count(*) FILTER (WHERE x.kind = 'deployment') AS n,
                     count(*) FILTER (WHERE x.kind = 'lead') AS lead_n,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY x.value)
                         FILTER (WHERE x.kind = 'lead') AS lead_m,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY x.value)
                         FILTER (WHERE x.kind = 'lead') AS lead_p,
                     avg(x.value) FILTER (WHERE x.kind = 'lead') AS lead_a,
                     count(*) FILTER (WHERE x.kind = 'failed') AS failed_n,
                     count(*) FILTER (WHERE x.kind = 'incident') AS incident_n,
                     count(x.value) FILTER (WHERE x.kind = 'incident') AS resolved_n,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY x.value)
                         FILTER (WHERE x.kind = 'incident') AS restore_m,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY x.value)
                         FILTER (WHERE x.kind = 'incident') AS restore_p,
                     bool_or(x.kind = 'listed') AS listed
              FROM (
                  -- Every deployment-like event lists its service; deployed and upgraded
                  -- ones are the deployments.
                  SELECT d.service,
                         CASE WHEN d.action IN ('deployed', 'upgraded') THEN 'deployment'
                              ELSE 'listed' END AS kind,
                         NULL::double precision AS value
                  FROM collector.deployments d
                  WHERE d.time >= from_time AND d.time < to_time
                    AND (coalesce(cardinality(environments), 0) = 0
                         OR d.environment = ANY (environments))
                    AND (coalesce(cardinality(services), 0) = 0 OR d.service = ANY (services))
                  UNION ALL
                  SELECT l.service, 'lead', l.lead_time_s
                  FROM collector.dora_lead_times(from_time, to_time, environments, services) l
                  WHERE l.lead_time_s IS NOT NULL
                  UNION ALL
                  SELECT f.service, 'failed', NULL
                  FROM collector.dora_failures(from_time, to_time, environments, services) f
                  WHERE f.failed
                  UNION ALL
                  SELECT r.service, 'incident', r.restore_s
                  FROM collector.dora_restores(from_time, to_time, environments, services) r
              ) AS x
              GROUP BY x.service) AS g
        WHERE g.n > 0 OR g.listed
        ORDER BY g.service;
END
$$;

COMMENT ON FUNCTION api.dora_by_service(timestamptz, timestamptz, text[], text[]) IS 'The four DORA metrics and their ratings per service, in one call: one row per service with a deployment-like event (service deployed, upgraded, rolledback or removed) in [from_time, to_time) in the given environments and services (NULL or empty: all), ordered by service. Each value is what the single-value function gives for that service alone (services => ARRAY[service]): deployments, per_day and frequency_rating as api.dora_deployment_frequency (deployments, per_day, rating); lead_time_deployments, lead_time_median_s, lead_time_p90_s, lead_time_mean_s and lead_time_rating as api.dora_lead_time; failed, failure_rate and failure_rating as api.dora_change_failure_rate (failure_rate null without deployments); incidents, resolved, restore_median_s, restore_p90_s and restore_rating as api.dora_time_to_restore (the incidents of that service that began in the range). Their COMMENTs define each metric and rating.';

-- Lookups by id ------------------------------------------------------------------------------

-- The identity table is read by one probe of its key per id asked (a LATERAL subquery kept
-- apart by OFFSET 0, or an aggregate, cannot become a join): on a table without statistics,
-- `id = ANY (ids)` and joins with the ids made the planner read the whole table (and once sort
-- it) for 100 ids. A lookup then costs what the ids cost, whatever the table's size.
-- Otherwise as in 0001: the identities give their events' times; the events are read with the
-- range of those times known to the planner (a custom plan every call), so only the time
-- partitions of that range are planned, and each identity probes at most one partition per
-- family (run-time pruning) through the (type, time) index. Never JIT (see 0001).
CREATE OR REPLACE FUNCTION api.events_by_id(ids text[]) RETURNS SETOF api.events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan SET jit = off AS $$
DECLARE
    earliest timestamptz;
    latest timestamptz;
    families text[];
BEGIN
    SELECT min(i.first), max(i.last) INTO earliest, latest
    FROM unnest(ids) AS k(id)
    CROSS JOIN LATERAL (SELECT min(i.time) AS first, max(i.time) AS last
                        FROM collector.event_identities i WHERE i.id = k.id) AS i;
    SELECT array_agg(p.family) INTO families
    FROM collector.partition_policy p WHERE p.identity_scope = 'global';
    RETURN QUERY
        SELECT e.* FROM (
            SELECT l.*
            FROM (SELECT DISTINCT k.id FROM unnest(ids) AS k(id)) AS k
            CROSS JOIN LATERAL (
                SELECT i.* FROM collector.event_identities i WHERE i.id = k.id OFFSET 0
            ) AS i
            CROSS JOIN LATERAL (
                SELECT v.* FROM api.events v
                WHERE v.time = i.time AND v.id = i.id AND v.source = i.source AND v.type = i.type
                  AND v.time BETWEEN earliest AND latest AND v.family = ANY (families)
                OFFSET 0
            ) AS l
            UNION ALL
            SELECT * FROM collector.partition_scope_events_by_id(ids)
        ) AS e
        ORDER BY e.time, e.seq;
END
$$;

-- Events of `partition`-scope families (ClusterCockpit events and logs) have no row in the
-- identity table. Their ids are SHA-256 hex; only ids of that shape are looked up there.
-- An id the identity table knows is the id of another family's event; a ClusterCockpit event
-- with that id is a copy of it or its original (a forward keeps id, source, type and time), so
-- it is looked for at the times of the id's identities only: one partition per family, each
-- probe pruned at run time. (A ClusterCockpit event sharing a known id at another time is not
-- found: searching every partition for each such id, most of them content hashes of plain
-- JSON, would make every lookup of those slow.)
-- Unknown ids have no time: they are searched newest first, in windows growing backwards (the
-- last week, the five weeks before, half a year, then the rest), each planned with its bounds
-- known (only its partitions are planned), and an id found is not looked for further back (its
-- time is part of it: one event). The ids are joined as a set: as an array literal, the
-- planner estimated each of them against each partition's statistics (10,000 unknown ids:
-- seconds of planning). The planner then probes each id in each partition's identity index,
-- or, for many ids, reads the window's partitions once against a hash of them. Recent ids, the
-- usual lookup, cost a few dozen partitions; unknown ones still cost them all. plpgsql plans
-- this only when run, so ids of other shapes (UUIDs) never pay for it.
CREATE OR REPLACE FUNCTION collector.partition_scope_events_by_id(ids text[]) RETURNS SETOF api.events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    hex text[];
    wanted text[];
    found text[];
    event api.events;
    back interval;
    newer timestamptz := 'infinity';
    older timestamptz;
    earliest timestamptz;
    latest timestamptz;
BEGIN
    -- Distinct, as they are joined; the shape tested without a regular expression (^[0-9a-f]{64}$
    -- took 20 µs an id).
    hex := ARRAY(SELECT DISTINCT x FROM unnest(ids) AS x WHERE length(x) = 64 AND x !~ '[^0-9a-f]');
    -- The unknown ones, and the span of the known ones' times: one probe of the identity key per
    -- id, as in api.events_by_id.
    SELECT array_agg(h.id) FILTER (WHERE i.first IS NULL), min(i.first), max(i.last)
    INTO wanted, earliest, latest
    FROM unnest(hex) AS h(id)
    CROSS JOIN LATERAL (SELECT min(k.time) AS first, max(k.time) AS last
                        FROM collector.event_identities k WHERE k.id = h.id) AS i;
    IF earliest IS NOT NULL THEN
        RETURN QUERY
            SELECT l.*
            FROM (SELECT DISTINCT h.id, i.time
                  FROM unnest(hex) AS h(id)
                  CROSS JOIN LATERAL (
                      SELECT k.time FROM collector.event_identities k WHERE k.id = h.id OFFSET 0
                  ) AS i) AS k
            CROSS JOIN LATERAL (
                SELECT v.* FROM api.events v
                WHERE v.family IN ('ccmessage', 'cclog') AND v.id = k.id AND v.time = k.time
                  AND v.time BETWEEN earliest AND latest
                OFFSET 0
            ) AS l;
    END IF;
    FOREACH back IN ARRAY ARRAY[interval '7 days', interval '6 weeks', interval '6 months', NULL]
    LOOP
        EXIT WHEN coalesce(cardinality(wanted), 0) = 0;
        older := coalesce(now() - back, '-infinity');
        found := '{}';
        FOR event IN
            SELECT v.* FROM unnest(wanted) AS w(id) JOIN api.events v ON v.id = w.id
            WHERE v.family IN ('ccmessage', 'cclog') AND v.time >= older AND v.time < newer
        LOOP
            RETURN NEXT event;
            found := found || event.id;
        END LOOP;
        wanted := ARRAY(SELECT unnest(wanted) EXCEPT SELECT unnest(found));
        newer := older;
    END LOOP;
END
$$;

-- The contract ----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION api.schema_version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '1.3' $$;

REVOKE ALL ON FUNCTION collector.dora_frequency_rating(double precision),
    collector.dora_lead_time_rating(double precision), collector.dora_failure_rating(double precision),
    collector.dora_restore_rating(double precision),
    collector.dora_lead_times(timestamptz, timestamptz, text[], text[]),
    collector.dora_failures(timestamptz, timestamptz, text[], text[]),
    collector.dora_restores(timestamptz, timestamptz, text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.dora_by_service(timestamptz, timestamptz, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.dora_by_service(timestamptz, timestamptz, text[], text[]) TO collector_reader;
