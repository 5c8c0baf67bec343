-- ClusterCockpit logs get their own family, HPC views (cluster events, logs, jobs), and retention
-- by dropping whole time partitions.
--
-- Retention is per family, so logs (kept unless configured) cannot share a family with cluster
-- events (30 days by default): logs move to family `cclog`.
--
-- Derived state when partitions are dropped, on purpose:
-- * Identities of families whose time is part of the identity (ccmessage, cclog: the id hashes
--   the line *with* its timestamp, so a replay always lands in the same time partition) are
--   kept by a unique index on their time partitions instead of collector.event_identities:
--   they drop with their partition. A replay of an expired message is stored again into an
--   expired partition, which the next maintenance drops: harmless.
-- * Identities of the other families stay in collector.event_identities after their events
--   are dropped. Their time can be the receive time (plain JSON, CloudEvents without time), so
--   a replay would land in the current partition and live on as a visible duplicate: keeping
--   the identity keeps it a duplicate. Their default retention is forever anyway.
-- * collector.jobs (one row per job) outlives the events it was built from: a job's summary is
--   small and worth more than the raw messages. Its merge is idempotent, so a replayed job
--   event after its identity expired changes nothing.

-- Logs: their own family ------------------------------------------------------------------

CREATE TABLE collector.events_cclog PARTITION OF collector.events
    FOR VALUES IN ('cclog') PARTITION BY RANGE (time);

-- identity_scope: `global` — the identity lives in collector.event_identities (a replay is
-- recognised whatever its time); `partition` — the family's time is part of its identity, so
-- a unique index on its time partitions suffices and identities drop with the partitions.
ALTER TABLE collector.partition_policy
    ADD COLUMN identity_scope text NOT NULL DEFAULT 'global'
        CHECK (identity_scope IN ('global', 'partition'));
INSERT INTO collector.partition_policy (family, period) VALUES ('cclog', 'day');
UPDATE collector.partition_policy SET identity_scope = 'partition'
WHERE family IN ('ccmessage', 'cclog');

COMMENT ON TABLE collector.partition_policy IS 'Per family: the length of its time partitions and where its identities live (global: collector.event_identities; partition: a unique index on its time partitions, for families whose time is part of the identity).';

-- Logs stored before this migration move to their family (a row movement, once).
SELECT collector.ensure_partition('cclog', d.day)
FROM (
    SELECT DISTINCT date_trunc('day', e.time, 'UTC') AS day
    FROM collector.events e
    WHERE e.family = 'ccmessage' AND e.type LIKE 'org.clustercockpit.log.%'
) AS d;
UPDATE collector.events SET family = 'cclog'
WHERE family = 'ccmessage' AND type LIKE 'org.clustercockpit.log.%';

CREATE UNIQUE INDEX events_ccmessage_identity ON collector.events_ccmessage (id, source, type, time);
CREATE UNIQUE INDEX events_cclog_identity ON collector.events_cclog (id, source, type, time);

DELETE FROM collector.event_identities i
USING collector.events e
WHERE e.family IN ('ccmessage', 'cclog')
  AND i.id = e.id AND i.source = e.source AND i.type = e.type;

-- Ingest: identities by scope --------------------------------------------------------------

-- Same contract as before. Events of a `partition`-scope family go straight into their
-- partition, where the unique index turns a replay into a conflict (a duplicate); the others
-- first claim their identity in collector.event_identities. One INSERT into collector.events
-- either way, so statement triggers on it see each batch once.
CREATE OR REPLACE FUNCTION collector.ingest(
    ids text[], sources text[], types text[], times timestamptz[], families text[],
    subjects text[], subject_types text[], predicates text[], type_versions text[],
    payloads text[], metadatas text[], received_ats timestamptz[], received_vias text[],
    rejected_reasons text[] DEFAULT '{}', rejected_locations text[] DEFAULT '{}',
    rejected_raws text[] DEFAULT '{}', rejected_sizes integer[] DEFAULT '{}',
    rejected_received_ats timestamptz[] DEFAULT '{}', rejected_received_vias text[] DEFAULT '{}',
    rejected_metadatas text[] DEFAULT '{}'
) RETURNS TABLE (stored integer, duplicate_positions integer[], rejected integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
-- A batch's arrays are held in memory a few times over: keep them off temporary files.
SET work_mem = '64MB' AS $$
DECLARE
    stored_positions integer[];
    n_rejected integer := 0;
    span record;
BEGIN
    -- Time partitions first. A batch usually falls in one period per family: look at its
    -- earliest and latest event rather than at every event.
    FOR span IN
        SELECT u.f AS family, p.period, min(u.t) AS earliest, max(u.t) AS latest
        FROM unnest(families, times) AS u(f, t)
        JOIN collector.partition_policy p ON p.family = u.f
        GROUP BY u.f, p.period
    LOOP
        IF date_trunc(span.period, span.earliest, 'UTC')
           = date_trunc(span.period, span.latest, 'UTC') THEN
            PERFORM collector.ensure_partition(span.family, span.earliest);
        ELSE
            PERFORM collector.ensure_partition(span.family, d.t)
            FROM (
                SELECT DISTINCT ON (date_trunc(span.period, u.t, 'UTC')) u.t
                FROM unnest(families, times) AS u(f, t)
                WHERE u.f = span.family
            ) AS d;
        END IF;
    END LOOP;

    -- Identity on the keys alone: the first occurrence of each (id, source, type) in the batch
    -- goes into event_identities, in key order so that concurrent batches take the same keys
    -- in the same order and cannot deadlock; a key already there makes its events duplicates.
    -- Only the kept events are then read in full, their payloads parsed and stored. The arrays
    -- are unnested in the select list, which streams them (unnest in FROM would copy each one
    -- into a tuplestore first); element n of every array is event n.
    WITH firsts AS MATERIALIZED (
        SELECT DISTINCT ON (u.id COLLATE "C", u.source COLLATE "C", u.type COLLATE "C")
               u.n, u.id, u.source, u.type, u.time, coalesce(p.identity_scope, 'global') AS scope
        FROM (SELECT unnest(ids) AS id, unnest(sources) AS source, unnest(types) AS type,
                     unnest(times) AS time, unnest(families) AS family,
                     generate_series(1, cardinality(ids)) AS n) AS u
        LEFT JOIN collector.partition_policy p ON p.family = u.family
        ORDER BY u.id COLLATE "C", u.source COLLATE "C", u.type COLLATE "C", u.n
    ), fresh AS (
        -- Global identities are claimed in event_identities (in key order: no deadlocks).
        INSERT INTO collector.event_identities (id, source, type, time)
        SELECT f.id, f.source, f.type, f.time FROM firsts f WHERE f.scope = 'global'
        ORDER BY f.id COLLATE "C", f.source COLLATE "C", f.type COLLATE "C"
        ON CONFLICT DO NOTHING
        RETURNING event_identities.id, event_identities.source, event_identities.type
    ), kept AS MATERIALIZED (
        SELECT f.n, f.id, f.source, f.type FROM firsts f
        JOIN fresh r ON r.id = f.id AND r.source = f.source AND r.type = f.type
        UNION ALL
        -- Partition-scope identities: the unique index on their time partition decides below.
        SELECT f.n, f.id, f.source, f.type FROM firsts f WHERE f.scope = 'partition'
    ), inserted AS (
        INSERT INTO collector.events (family, time, id, source, type, subject, subject_type,
                                      predicate, type_version, received_at, received_via,
                                      payload, metadata)
        SELECT u.family, u.time, u.id, u.source, u.type, u.subject, u.subject_type, u.predicate,
               u.type_version, u.received_at, u.received_via, u.payload::jsonb,
               coalesce(u.metadata::jsonb, '{}'::jsonb)
        FROM (SELECT unnest(ids) AS id, unnest(sources) AS source, unnest(types) AS type,
                     unnest(times) AS time, unnest(families) AS family,
                     unnest(subjects) AS subject, unnest(subject_types) AS subject_type,
                     unnest(predicates) AS predicate, unnest(type_versions) AS type_version,
                     unnest(payloads) AS payload, unnest(metadatas) AS metadata,
                     unnest(received_ats) AS received_at, unnest(received_vias) AS received_via,
                     generate_series(1, cardinality(ids)) AS n) AS u
        JOIN kept k ON k.n = u.n
        ON CONFLICT DO NOTHING
        RETURNING events.id, events.source, events.type
    )
    SELECT coalesce(array_agg(k.n), '{}') INTO stored_positions
    FROM kept k
    JOIN inserted s ON s.id = k.id AND s.source = k.source AND s.type = k.type;

    INSERT INTO collector.rejected_events (received_at, received_via, reason, location, raw,
                                           raw_size, metadata)
    SELECT r.received_at, r.received_via, r.reason, r.location, r.raw, r.size,
           coalesce(r.metadata::jsonb, '{}'::jsonb)
    FROM unnest(rejected_received_ats, rejected_received_vias, rejected_reasons,
                rejected_locations, rejected_raws, rejected_sizes, rejected_metadatas)
         AS r(received_at, received_via, reason, location, raw, size, metadata);
    GET DIAGNOSTICS n_rejected = ROW_COUNT;

    -- Positions (1-based) of the events that were not stored because their identity was.
    RETURN QUERY SELECT
        cardinality(stored_positions),
        CASE WHEN cardinality(stored_positions) = coalesce(cardinality(ids), 0) THEN '{}'
        ELSE ARRAY(SELECT g FROM generate_series(1, coalesce(cardinality(ids), 0)) AS g
                   WHERE NOT EXISTS (SELECT FROM unnest(stored_positions) AS s(p) WHERE s.p = g)
                   ORDER BY g)
        END,
        n_rejected;
END
$$;

-- Lookups by id: events of `partition`-scope families have no row in the identity table. Their
-- ids are SHA-256 hex; only ids of that shape the identity table does not know are looked up
-- in those families' identity indexes. Their time is unknown, and a probe of every time
-- partition plans them all (hundreds: logs are daily and kept), so they are searched newest
-- first, in windows growing backwards (the last week, the five weeks before, half a year,
-- then the rest), each planned with its bounds known (only its partitions are planned), and
-- an id found is not looked for further back (its time is part of it: one event). Recent ids,
-- the usual lookup, cost a few dozen partitions; unknown ones still cost them all. plpgsql
-- plans this only when run, so known ids (UUIDs) never pay for it.
CREATE FUNCTION collector.partition_scope_events_by_id(ids text[]) RETURNS SETOF api.events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    wanted text[];
    found text[] := '{}';
    event api.events;
    back interval;
    newer timestamptz := 'infinity';
    older timestamptz;
BEGIN
    SELECT array_agg(x) INTO wanted
    FROM unnest(ids) AS x
    WHERE x ~ '^[0-9a-f]{64}$'
      AND NOT EXISTS (SELECT FROM collector.event_identities i WHERE i.id = x);
    FOREACH back IN ARRAY ARRAY[interval '7 days', interval '6 weeks', interval '6 months', NULL]
    LOOP
        EXIT WHEN coalesce(cardinality(wanted), 0) = 0;
        older := coalesce(now() - back, '-infinity');
        FOR event IN
            SELECT v.* FROM api.events v
            WHERE v.family IN ('ccmessage', 'cclog') AND v.id = ANY (wanted)
              AND v.time >= older AND v.time < newer
        LOOP
            RETURN NEXT event;
            found := found || event.id;
        END LOOP;
        wanted := ARRAY(SELECT unnest(wanted) EXCEPT SELECT unnest(found));
        newer := older;
    END LOOP;
END
$$;

-- The identities asked for give their events' times; the events are then read with the range
-- of those times known to the planner (a custom plan every call), so it plans only the time
-- partitions in that range. A probe through the identities' times alone would plan every
-- partition of every family: hundreds after a year of daily partitions, 0.1-0.3 s of planning
-- for a single id. Each identity then probes at most one partition per family (run-time
-- pruning) through the (type, time) index.
CREATE OR REPLACE FUNCTION api.events_by_id(ids text[]) RETURNS SETOF api.events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    earliest timestamptz;
    latest timestamptz;
    families text[];
BEGIN
    SELECT min(i.time), max(i.time) INTO earliest, latest
    FROM collector.event_identities i WHERE i.id = ANY (ids);
    SELECT array_agg(p.family) INTO families
    FROM collector.partition_policy p WHERE p.identity_scope = 'global';
    RETURN QUERY
        SELECT e.* FROM (
            SELECT l.*
            FROM collector.event_identities i
            CROSS JOIN LATERAL (
                SELECT v.* FROM api.events v
                WHERE v.time = i.time AND v.id = i.id AND v.source = i.source AND v.type = i.type
                  AND v.time BETWEEN earliest AND latest AND v.family = ANY (families)
                OFFSET 0
            ) AS l
            WHERE i.id = ANY (ids)
            UNION ALL
            SELECT * FROM collector.partition_scope_events_by_id(ids)
        ) AS e
        ORDER BY e.time, e.seq;
END
$$;

COMMENT ON FUNCTION api.events_by_id(text[]) IS 'Events whose id is in ids, ordered by time; unknown ids are simply absent. One id can match several events of different source or type.';
COMMENT ON COLUMN api.events.family IS 'Format family: cdevents, cloudevents, ccmessage (ClusterCockpit events), cclog (ClusterCockpit logs) or raw.';

-- Partitions: created ahead (with names), dropped when expired -------------------------------

-- The partitions created for the window from `behind` before now to `ahead` after now, by
-- family (ensure_partitions_ahead counts them; this one says which).
CREATE FUNCTION collector.create_partitions_ahead(ahead interval DEFAULT '14 days', behind interval DEFAULT '1 day')
RETURNS TABLE (family text, partition_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    policy record;
    at timestamptz;
    ats timestamptz[];
BEGIN
    FOR policy IN SELECT p.family, p.period FROM collector.partition_policy p ORDER BY p.family LOOP
        ats := '{}';
        at := now() - behind;
        WHILE at <= now() + ahead LOOP
            ats := ats || at;
            at := at + ('1 ' || policy.period)::interval;
        END LOOP;
        ats := ats || (now() + ahead);
        FOREACH at IN ARRAY ats LOOP
            IF collector.ensure_partition(policy.family, at) THEN
                family := policy.family;
                -- The name ensure_partition gives the partition holding `at`.
                partition_name := format('events_%s_%s', policy.family,
                    to_char(date_trunc(policy.period, at, 'UTC') AT TIME ZONE 'UTC', 'YYYYMMDD'));
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION collector.ensure_partitions_ahead(ahead interval DEFAULT '14 days', behind interval DEFAULT '1 day')
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*)::integer FROM collector.create_partitions_ahead(ahead, behind)
$$;

-- The time partitions of a family with their bounds, read from the catalog.
CREATE FUNCTION collector.time_partitions(family text)
RETURNS TABLE (partition_name text, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET datestyle = 'ISO, YMD' SET timezone = 'UTC' AS $$
    SELECT c.relname::text, b[1]::timestamptz, b[2]::timestamptz
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') AS b
    WHERE i.inhparent = to_regclass(format('collector.%I', 'events_' || time_partitions.family))
    ORDER BY 2
$$;

-- Retention: drops the time partitions of `family` whose upper bound is at least `retention`
-- old (every event in them is), and returns their names. Never deletes rows: a partition is
-- dropped whole or kept whole. A NULL retention keeps everything. Dropping needs the family's
-- table to itself for a moment: when a long query holds it past lock_timeout, nothing is
-- dropped (ingest of the family would queue behind the wait) and a later run catches up.
CREATE FUNCTION collector.drop_expired_partitions(family text, retention interval)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET lock_timeout = '5s' AS $$
DECLARE
    expired text[];
    partition_name text;
BEGIN
    IF NOT EXISTS (SELECT FROM collector.partition_policy p
                   WHERE p.family = drop_expired_partitions.family) THEN
        RAISE EXCEPTION 'retention: unknown family %', drop_expired_partitions.family
            USING HINT = 'families are listed in collector.partition_policy';
    END IF;
    IF retention IS NULL THEN
        RETURN;
    END IF;
    IF retention <= interval '0' THEN
        RAISE EXCEPTION 'retention of %: % is not a positive interval',
            drop_expired_partitions.family, retention;
    END IF;
    expired := ARRAY(
        SELECT t.partition_name FROM collector.time_partitions(drop_expired_partitions.family) t
        WHERE t.upper_bound <= now() - retention
        ORDER BY t.lower_bound);
    IF cardinality(expired) = 0 THEN
        RETURN;
    END IF;
    BEGIN
        -- The family's table first, as ingest locks it before a partition: no lock cycle.
        EXECUTE format('LOCK TABLE collector.%I IN ACCESS EXCLUSIVE MODE',
                       'events_' || drop_expired_partitions.family);
    EXCEPTION WHEN lock_not_available THEN
        RAISE WARNING 'retention: collector.events_% is busy; expired partitions are kept until a later run',
            drop_expired_partitions.family;
        RETURN;
    END;
    FOREACH partition_name IN ARRAY expired LOOP
        -- Another maintenance run (a second collector) may have dropped it meanwhile.
        IF to_regclass(format('collector.%I', partition_name)) IS NOT NULL THEN
            EXECUTE format('DROP TABLE collector.%I', partition_name);
            RETURN NEXT partition_name;
        END IF;
    END LOOP;
END
$$;

-- Jobs: one row per job, kept at ingest ----------------------------------------------------

-- Small total helpers over the job JSON: a wrong type gives NULL, never an error (an error in
-- the ingest trigger would refuse the whole batch).
CREATE FUNCTION collector.json_text(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN jsonb_typeof(value) IN ('string', 'number') THEN nullif(value #>> '{}', '') END
$$;

CREATE FUNCTION collector.json_number(value jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN jsonb_typeof(value) = 'number' AND abs(value::numeric) < 1e20 THEN value::numeric
        WHEN jsonb_typeof(value) = 'string' AND value #>> '{}' ~ '^\s*-?\d{1,19}(\.\d+)?\s*$'
            THEN (value #>> '{}')::numeric
    END
$$;

CREATE FUNCTION collector.json_count(value jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN n >= 0 AND n < 2147483647 AND n = trunc(n) THEN n::integer END
    FROM (SELECT collector.json_number(value) AS n) AS v
$$;

-- Epoch seconds from a Unix timestamp in s, ms, µs or ns (told apart by size, as in the line
-- protocol); NULL when not a positive number.
CREATE FUNCTION collector.json_epoch(value jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN n <= 0 THEN NULL
        WHEN n < 1e11 THEN n
        WHEN n < 1e14 THEN n / 1e3
        WHEN n < 1e17 THEN n / 1e6
        ELSE n / 1e9
    END::double precision
    FROM (SELECT collector.json_number(value) AS n) AS v
$$;

-- What a start_job or stop_job message says about its job (ClusterCockpit job JSON), as a small
-- document of the fields the jobs table uses; the full job stays in the event's payload.
CREATE FUNCTION collector.job_facts(job jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'user', collector.json_text(job -> 'user'),
        'project', collector.json_text(job -> 'project'),
        'job_name', collector.json_text(job -> 'metaData' -> 'jobName'),
        'sub_cluster', collector.json_text(job -> 'subCluster'),
        'partition', collector.json_text(job -> 'partition'),
        'job_state', collector.json_text(job -> 'jobState'),
        'nodes', (
            SELECT jsonb_agg(r.value -> 'hostname' ORDER BY r.n)
            FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(job -> 'resources') = 'array'
                     THEN job -> 'resources' ELSE '[]' END) WITH ORDINALITY AS r(value, n)
            WHERE jsonb_typeof(r.value -> 'hostname') = 'string'
        ),
        'num_nodes', collector.json_count(job -> 'numNodes'),
        'num_hwthreads', collector.json_count(job -> 'numHwthreads'),
        'num_acc', collector.json_count(job -> 'numAcc'),
        'walltime', collector.json_number(job -> 'walltime'),
        'duration', collector.json_number(job -> 'duration'),
        'start_time', collector.json_epoch(job -> 'startTime'),
        'stop_time', collector.json_epoch(job -> 'stopTime')
    ))
$$;

CREATE FUNCTION collector.jsonb_texts(value jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(t.x ORDER BY t.n)
    FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(value) = 'array' THEN value ELSE '[]' END)
         WITH ORDINALITY AS t(x, n)
$$;

CREATE FUNCTION collector.epoch_time(seconds text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_timestamp(seconds::double precision)
$$;

-- Each side (start, stop) holds the facts of the earliest event of that kind (by time, then
-- id): a minimum, so the row is the same whatever order and however often events arrive.
-- Every other column is computed from the two sides: start values win, stop values fill in.
CREATE TABLE collector.jobs (
    cluster          text NOT NULL,
    job_id           text NOT NULL,
    start_event_time timestamptz,
    start_event_id   text,
    start_facts      jsonb,
    stop_event_time  timestamptz,
    stop_event_id    text,
    stop_facts       jsonb,
    state text GENERATED ALWAYS AS (
        CASE WHEN stop_event_time IS NOT NULL THEN 'finished' ELSE 'running' END) STORED,
    job_state text GENERATED ALWAYS AS (
        CASE WHEN stop_event_time IS NOT NULL THEN stop_facts ->> 'job_state'
             ELSE start_facts ->> 'job_state' END) STORED,
    user_name text GENERATED ALWAYS AS (
        coalesce(start_facts ->> 'user', stop_facts ->> 'user')) STORED,
    project text GENERATED ALWAYS AS (
        coalesce(start_facts ->> 'project', stop_facts ->> 'project')) STORED,
    job_name text GENERATED ALWAYS AS (
        coalesce(start_facts ->> 'job_name', stop_facts ->> 'job_name')) STORED,
    sub_cluster text GENERATED ALWAYS AS (
        coalesce(start_facts ->> 'sub_cluster', stop_facts ->> 'sub_cluster')) STORED,
    partition text GENERATED ALWAYS AS (
        coalesce(start_facts ->> 'partition', stop_facts ->> 'partition')) STORED,
    nodes text[] GENERATED ALWAYS AS (
        collector.jsonb_texts(coalesce(start_facts -> 'nodes', stop_facts -> 'nodes'))) STORED,
    num_nodes integer GENERATED ALWAYS AS (
        coalesce((start_facts ->> 'num_nodes')::integer, (stop_facts ->> 'num_nodes')::integer,
                 jsonb_array_length(coalesce(start_facts -> 'nodes', stop_facts -> 'nodes'))))
        STORED,
    num_hwthreads integer GENERATED ALWAYS AS (
        coalesce((start_facts ->> 'num_hwthreads')::integer,
                 (stop_facts ->> 'num_hwthreads')::integer)) STORED,
    num_acc integer GENERATED ALWAYS AS (
        coalesce((start_facts ->> 'num_acc')::integer, (stop_facts ->> 'num_acc')::integer))
        STORED,
    walltime_s double precision GENERATED ALWAYS AS (
        coalesce((start_facts ->> 'walltime')::double precision,
                 (stop_facts ->> 'walltime')::double precision)) STORED,
    start_time timestamptz GENERATED ALWAYS AS (
        coalesce(collector.epoch_time(start_facts ->> 'start_time'),
                 collector.epoch_time(stop_facts ->> 'start_time'), start_event_time)) STORED,
    stop_time timestamptz GENERATED ALWAYS AS (
        CASE WHEN stop_event_time IS NOT NULL
             THEN coalesce(collector.epoch_time(stop_facts ->> 'stop_time'), stop_event_time)
        END) STORED,
    duration_s double precision GENERATED ALWAYS AS (
        CASE WHEN stop_event_time IS NOT NULL THEN coalesce(
            (stop_facts ->> 'duration')::double precision,
            extract(epoch FROM
                coalesce(collector.epoch_time(stop_facts ->> 'stop_time'), stop_event_time)
                - coalesce(collector.epoch_time(start_facts ->> 'start_time'),
                           collector.epoch_time(stop_facts ->> 'start_time'), start_event_time)
            )::double precision)
        END) STORED,
    PRIMARY KEY (cluster, job_id),
    CHECK (start_event_time IS NOT NULL OR stop_event_time IS NOT NULL)
);
CREATE INDEX jobs_start_time ON collector.jobs (start_time);
CREATE INDEX jobs_stop_time ON collector.jobs (stop_time);
CREATE INDEX jobs_running ON collector.jobs (cluster, start_time) WHERE stop_event_time IS NULL;

COMMENT ON TABLE collector.jobs IS 'One row per ClusterCockpit job (cluster, job id), merged at ingest from its start_job and stop_job events by collector.track_jobs; kept when those events expire.';

-- Merges job events into collector.jobs. Events that are not start_job / stop_job messages
-- with a job JSON carrying a jobId are ignored (they stay cluster events). Returns the number
-- of job events merged.
CREATE FUNCTION collector.merge_job_events(batch collector.events[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    merged integer;
BEGIN
    WITH job_events AS (
        SELECT coalesce(collector.json_text(e.payload -> 'data' -> 'cluster'),
                        e.payload -> 'tags' ->> 'cluster') AS cluster,
               collector.json_text(e.payload -> 'data' -> 'jobId') AS job_id,
               e.type = 'org.clustercockpit.event.start_job' AS is_start,
               e.time, e.id,
               collector.job_facts(e.payload -> 'data') AS facts
        FROM unnest(batch) AS e
        WHERE e.family = 'ccmessage'
          AND e.type IN ('org.clustercockpit.event.start_job', 'org.clustercockpit.event.stop_job')
          AND jsonb_typeof(e.payload -> 'data') = 'object'
    ), usable AS (
        SELECT * FROM job_events WHERE cluster IS NOT NULL AND job_id IS NOT NULL
    ), starts AS (
        SELECT DISTINCT ON (cluster, job_id) * FROM usable WHERE is_start
        ORDER BY cluster, job_id, time, id
    ), stops AS (
        SELECT DISTINCT ON (cluster, job_id) * FROM usable WHERE NOT is_start
        ORDER BY cluster, job_id, time, id
    ), upserted AS (
        INSERT INTO collector.jobs AS j (cluster, job_id, start_event_time, start_event_id,
                                         start_facts, stop_event_time, stop_event_id, stop_facts)
        SELECT coalesce(s.cluster, t.cluster), coalesce(s.job_id, t.job_id),
               s.time, s.id, s.facts, t.time, t.id, t.facts
        FROM starts s FULL JOIN stops t ON t.cluster = s.cluster AND t.job_id = s.job_id
        ORDER BY 1, 2  -- one lock order for concurrent batches
        ON CONFLICT (cluster, job_id) DO UPDATE SET
            start_event_time = CASE WHEN collector.job_event_wins(
                    excluded.start_event_time, excluded.start_event_id,
                    j.start_event_time, j.start_event_id)
                THEN excluded.start_event_time ELSE j.start_event_time END,
            start_event_id = CASE WHEN collector.job_event_wins(
                    excluded.start_event_time, excluded.start_event_id,
                    j.start_event_time, j.start_event_id)
                THEN excluded.start_event_id ELSE j.start_event_id END,
            start_facts = CASE WHEN collector.job_event_wins(
                    excluded.start_event_time, excluded.start_event_id,
                    j.start_event_time, j.start_event_id)
                THEN excluded.start_facts ELSE j.start_facts END,
            stop_event_time = CASE WHEN collector.job_event_wins(
                    excluded.stop_event_time, excluded.stop_event_id,
                    j.stop_event_time, j.stop_event_id)
                THEN excluded.stop_event_time ELSE j.stop_event_time END,
            stop_event_id = CASE WHEN collector.job_event_wins(
                    excluded.stop_event_time, excluded.stop_event_id,
                    j.stop_event_time, j.stop_event_id)
                THEN excluded.stop_event_id ELSE j.stop_event_id END,
            stop_facts = CASE WHEN collector.job_event_wins(
                    excluded.stop_event_time, excluded.stop_event_id,
                    j.stop_event_time, j.stop_event_id)
                THEN excluded.stop_facts ELSE j.stop_facts END
        RETURNING 1
    )
    SELECT count(*) INTO merged FROM usable;
    RETURN merged;
END
$$;

-- Whether an incoming event (time, id) replaces the one a side holds: it exists, and the side
-- is empty or holds a later event.
CREATE FUNCTION collector.job_event_wins(
    new_time timestamptz, new_id text, old_time timestamptz, old_id text
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT new_time IS NOT NULL AND (old_time IS NULL OR (new_time, new_id) < (old_time, old_id))
$$;

CREATE FUNCTION collector.track_jobs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    batch collector.events[];
BEGIN
    SELECT array_agg(n) INTO batch FROM inserted n
    WHERE n.family = 'ccmessage'
      AND n.type IN ('org.clustercockpit.event.start_job', 'org.clustercockpit.event.stop_job');
    IF batch IS NOT NULL THEN
        PERFORM collector.merge_job_events(batch);
    END IF;
    RETURN NULL;
END
$$;

-- Statement-level with a transition table: one call per ingested batch, seeing only the rows
-- actually inserted (a duplicate is never inserted, so never merged twice).
CREATE TRIGGER events_track_jobs AFTER INSERT ON collector.events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION collector.track_jobs();

-- Jobs from job events stored before this migration.
SELECT collector.merge_job_events(array_agg(e))
FROM collector.events e
WHERE e.family = 'ccmessage'
  AND e.type IN ('org.clustercockpit.event.start_job', 'org.clustercockpit.event.stop_job');

REVOKE ALL ON FUNCTION
    collector.partition_scope_events_by_id(text[]),
    collector.create_partitions_ahead(interval, interval), collector.time_partitions(text),
    collector.drop_expired_partitions(text, interval), collector.json_text(jsonb),
    collector.json_number(jsonb), collector.json_count(jsonb), collector.json_epoch(jsonb),
    collector.job_facts(jsonb), collector.jsonb_texts(jsonb), collector.epoch_time(text),
    collector.merge_job_events(collector.events[]),
    collector.job_event_wins(timestamptz, text, timestamptz, text), collector.track_jobs()
FROM PUBLIC;

-- The public API: HPC views ----------------------------------------------------------------

CREATE VIEW api.cluster_events AS
SELECT e.time,
       e.payload -> 'tags' ->> 'cluster' AS cluster,
       e.payload -> 'tags' ->> 'hostname' AS hostname,
       e.payload -> 'tags' ->> 'type' AS type,
       e.payload -> 'tags' ->> 'type-id' AS type_id,
       e.payload -> 'tags' ->> 'stype' AS stype,
       e.payload -> 'tags' ->> 'stype-id' AS stype_id,
       e.payload ->> 'name' AS name,
       e.payload -> 'fields' ->> 'event' AS message,
       e.payload -> 'data' AS data,
       e.payload -> 'tags' AS tags,
       e.id, e.source, e.received_at
FROM collector.events e
WHERE e.family = 'ccmessage';

COMMENT ON VIEW api.cluster_events IS 'ClusterCockpit events (line-protocol messages with a string field event), one row each, job start/stop included. Filter on time to touch only the partitions of that range.';
COMMENT ON COLUMN api.cluster_events.time IS 'When the event happened: the line''s timestamp, else when it was received.';
COMMENT ON COLUMN api.cluster_events.cluster IS 'Cluster name: the cluster tag, else the source''s configured cluster or ?cluster=.';
COMMENT ON COLUMN api.cluster_events.hostname IS 'Host that sent the event (hostname tag); null when absent.';
COMMENT ON COLUMN api.cluster_events.type IS 'ClusterCockpit type tag: the part of the host concerned (node, socket, core, hwthread, accelerator, ...).';
COMMENT ON COLUMN api.cluster_events.type_id IS 'Which one of that type (type-id tag), e.g. the socket number.';
COMMENT ON COLUMN api.cluster_events.stype IS 'Sub-type (stype tag), e.g. filesystem; null when absent.';
COMMENT ON COLUMN api.cluster_events.stype_id IS 'Which one of the sub-type (stype-id tag), e.g. /home; null when absent.';
COMMENT ON COLUMN api.cluster_events.name IS 'Event name: the measurement (start_job and stop_job also for job,function=start_job|stop_job).';
COMMENT ON COLUMN api.cluster_events.message IS 'The event string as sent (field event).';
COMMENT ON COLUMN api.cluster_events.data IS 'The event string parsed as JSON when it is a JSON object or array (job events carry the job), else null.';
COMMENT ON COLUMN api.cluster_events.tags IS 'Every tag of the line as a JSON object (cluster included).';
COMMENT ON COLUMN api.cluster_events.id IS 'Event id: a SHA-256 of the line''s content and timestamp; api.event(id) returns the whole event.';
COMMENT ON COLUMN api.cluster_events.source IS 'Event source: /clusters/<cluster>[/hosts/<hostname>].';
COMMENT ON COLUMN api.cluster_events.received_at IS 'When collector received the event.';

CREATE VIEW api.cluster_logs AS
SELECT e.time,
       e.payload -> 'tags' ->> 'cluster' AS cluster,
       e.payload -> 'tags' ->> 'hostname' AS hostname,
       e.payload -> 'tags' ->> 'type' AS type,
       e.payload -> 'tags' ->> 'type-id' AS type_id,
       e.payload -> 'tags' ->> 'stype' AS stype,
       e.payload -> 'tags' ->> 'stype-id' AS stype_id,
       e.payload ->> 'name' AS name,
       e.payload -> 'tags' ->> 'loglevel' AS level,
       e.payload -> 'fields' ->> 'log' AS message,
       e.payload -> 'tags' AS tags,
       e.id, e.source, e.received_at
FROM collector.events e
WHERE e.family = 'cclog';

COMMENT ON VIEW api.cluster_logs IS 'ClusterCockpit log lines (line-protocol messages with a string field log), one row each. Filter on time to touch only the partitions of that range.';
COMMENT ON COLUMN api.cluster_logs.time IS 'When the line was logged: the line''s timestamp, else when it was received.';
COMMENT ON COLUMN api.cluster_logs.cluster IS 'Cluster name: the cluster tag, else the source''s configured cluster or ?cluster=.';
COMMENT ON COLUMN api.cluster_logs.hostname IS 'Host that sent the log line (hostname tag); null when absent.';
COMMENT ON COLUMN api.cluster_logs.type IS 'ClusterCockpit type tag: the part of the host concerned (node, socket, core, hwthread, accelerator, ...).';
COMMENT ON COLUMN api.cluster_logs.type_id IS 'Which one of that type (type-id tag).';
COMMENT ON COLUMN api.cluster_logs.stype IS 'Sub-type (stype tag); null when absent.';
COMMENT ON COLUMN api.cluster_logs.stype_id IS 'Which one of the sub-type (stype-id tag); null when absent.';
COMMENT ON COLUMN api.cluster_logs.name IS 'Log name: the measurement (e.g. slurmd).';
COMMENT ON COLUMN api.cluster_logs.level IS 'Log level as sent in the loglevel tag (e.g. info, warn, error); null when absent.';
COMMENT ON COLUMN api.cluster_logs.message IS 'The log line (field log).';
COMMENT ON COLUMN api.cluster_logs.tags IS 'Every tag of the line as a JSON object (cluster included).';
COMMENT ON COLUMN api.cluster_logs.id IS 'Event id: a SHA-256 of the line''s content and timestamp; api.event(id) returns the whole event.';
COMMENT ON COLUMN api.cluster_logs.source IS 'Event source: /clusters/<cluster>[/hosts/<hostname>].';
COMMENT ON COLUMN api.cluster_logs.received_at IS 'When collector received the log line.';

CREATE VIEW api.jobs AS
SELECT cluster, job_id, state, job_state, user_name, project, job_name, sub_cluster, partition,
       nodes, num_nodes, num_hwthreads, num_acc, walltime_s, start_time, stop_time, duration_s,
       start_event_id, start_event_time, stop_event_id, stop_event_time
FROM collector.jobs;

COMMENT ON VIEW api.jobs IS 'ClusterCockpit jobs, one row per (cluster, job_id): start_job and stop_job events joined as they arrive, in any order and with duplicates ignored. Fields come from the job JSON, the start event''s first, the stop event''s filling in. Kept when the events themselves expire.';
COMMENT ON COLUMN api.jobs.cluster IS 'Cluster of the job: the job JSON''s cluster, else the message''s cluster tag.';
COMMENT ON COLUMN api.jobs.job_id IS 'The job JSON''s jobId, as text (the batch system''s job id).';
COMMENT ON COLUMN api.jobs.state IS 'running: a start and no stop received yet; finished: a stop was received (even if its start was not).';
COMMENT ON COLUMN api.jobs.job_state IS 'ClusterCockpit jobState as sent: the stop event''s (completed, failed, cancelled, timeout, ...) once finished, else the start event''s (usually running).';
COMMENT ON COLUMN api.jobs.user_name IS 'The job''s user (job JSON user). Named user_name because user is an SQL keyword (select user returns the session user).';
COMMENT ON COLUMN api.jobs.project IS 'The job''s project or account (job JSON project).';
COMMENT ON COLUMN api.jobs.job_name IS 'The job''s name (job JSON metaData.jobName); null when absent.';
COMMENT ON COLUMN api.jobs.sub_cluster IS 'Sub-cluster the job ran on (job JSON subCluster).';
COMMENT ON COLUMN api.jobs.partition IS 'Batch system partition or queue (job JSON partition).';
COMMENT ON COLUMN api.jobs.nodes IS 'Host names of the job''s nodes, in the order of the job JSON resources[].hostname.';
COMMENT ON COLUMN api.jobs.num_nodes IS 'Number of nodes: job JSON numNodes, else the number of host names.';
COMMENT ON COLUMN api.jobs.num_hwthreads IS 'Number of hardware threads (job JSON numHwthreads).';
COMMENT ON COLUMN api.jobs.num_acc IS 'Number of accelerators (job JSON numAcc).';
COMMENT ON COLUMN api.jobs.walltime_s IS 'Requested wall time in seconds (job JSON walltime).';
COMMENT ON COLUMN api.jobs.start_time IS 'When the job started: job JSON startTime (Unix time; s, ms, µs or ns), else the start event''s time.';
COMMENT ON COLUMN api.jobs.stop_time IS 'When the job stopped: the stop event''s stopTime, else its time; null while running.';
COMMENT ON COLUMN api.jobs.duration_s IS 'Run time in seconds: the stop event''s duration when present, else stop_time - start_time; null while running.';
COMMENT ON COLUMN api.jobs.start_event_id IS 'Id of the start_job event used (the earliest by time); api.event(id) returns it while it is retained. Null when no start was received.';
COMMENT ON COLUMN api.jobs.start_event_time IS 'Time of that start_job event; null when no start was received.';
COMMENT ON COLUMN api.jobs.stop_event_id IS 'Id of the stop_job event used (the earliest by time); null while running.';
COMMENT ON COLUMN api.jobs.stop_event_time IS 'Time of that stop_job event; null while running.';

GRANT SELECT ON api.cluster_events, api.cluster_logs, api.jobs TO collector_reader;

SELECT collector.ensure_partitions_ahead();
