-- Events, rejected events, the migrations ledger, ingest rules, roles and the first `api` objects.
--
-- Schema `collector` is private (tables, ingest, maintenance); schema `api` is the public,
-- read-only contract queried by Grafana and analysts.

CREATE SCHEMA collector;
CREATE SCHEMA api;
REVOKE ALL ON SCHEMA collector FROM PUBLIC;

COMMENT ON SCHEMA collector IS 'Private storage of collector: tables, ingest functions, maintenance. Not a contract.';
COMMENT ON SCHEMA api IS 'The public, read-only SQL API of collector: documented views and functions.';

-- The ledger of `collector migrate`: one row per applied file, with its checksum.
CREATE TABLE collector.migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Roles are cluster-wide while migrations run per database: create them only when missing,
-- and tolerate a concurrent migration of another database creating them first.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['collector_reader', 'collector_writer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    -- A role's settings are cluster-wide as well, and two migrations updating them at once fail
    -- ("tuple concurrently updated"): set the timeout only when none is set (an administrator's
    -- own value is kept).
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_db_role_setting s
        JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
        WHERE r.rolname = 'collector_reader' AND s.setdatabase = 0
          AND EXISTS (SELECT FROM unnest(s.setconfig) AS c WHERE c LIKE 'statement\_timeout=%')
    ) THEN
        BEGIN
            ALTER ROLE collector_reader SET statement_timeout = '30s';
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- Events: partitioned by family (so retention can differ per family), then by time.
CREATE SEQUENCE collector.events_seq;

CREATE TABLE collector.events (
    seq          bigint NOT NULL DEFAULT nextval('collector.events_seq'),
    family       text NOT NULL,
    time         timestamptz NOT NULL,
    id           text NOT NULL,
    source       text NOT NULL,
    type         text NOT NULL,
    subject      text,
    subject_type text,
    predicate    text,
    type_version text,
    received_at  timestamptz NOT NULL,
    received_via text NOT NULL,
    payload      jsonb NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}'
) PARTITION BY LIST (family);

CREATE TABLE collector.events_cdevents PARTITION OF collector.events
    FOR VALUES IN ('cdevents') PARTITION BY RANGE (time);
CREATE TABLE collector.events_cloudevents PARTITION OF collector.events
    FOR VALUES IN ('cloudevents') PARTITION BY RANGE (time);
CREATE TABLE collector.events_ccmessage PARTITION OF collector.events
    FOR VALUES IN ('ccmessage') PARTITION BY RANGE (time);
-- ClusterCockpit logs apart from its events: retention is per family, and logs are kept
-- unless configured while cluster events are not.
CREATE TABLE collector.events_cclog PARTITION OF collector.events
    FOR VALUES IN ('cclog') PARTITION BY RANGE (time);
CREATE TABLE collector.events_raw PARTITION OF collector.events
    FOR VALUES IN ('raw') PARTITION BY RANGE (time);

-- Time ranges, and "the latest N events" (ORDER BY time DESC LIMIT N: a merge of each
-- partition's index read backwards, where a BRIN index would sort every row of the range).
-- Events arrive mostly in time order, so inserts append to the index's right edge: its ingest
-- cost was not measurable against a BRIN index (docs/benchmarks.md, `collector bench api`).
CREATE INDEX events_time ON collector.events (time);

-- "What arrived lately" (the Collector health dashboard's ingest rate): received_at grows with
-- the rows' physical order in every partition, so a BRIN index finds a recent window by
-- reading a few pages per partition. Its ingest cost was not measurable; without it, six hours
-- out of a million-row year took 0.6 s (a sequential scan) against 0.3 ms.
CREATE INDEX events_received_at ON collector.events USING brin (received_at)
    WITH (autosummarize = on);

-- Identity (source, type, id) must be unique across all time partitions, and a replay must be
-- recognised whenever it arrives: an unpartitioned table holds each identity and where
-- (which time) its event lives. Its primary key starts with id, so lookups by id use it.
CREATE TABLE collector.event_identities (
    id     text NOT NULL,
    source text NOT NULL,
    type   text NOT NULL,
    time   timestamptz NOT NULL,
    PRIMARY KEY (id, source, type)
);

-- Families whose time is part of the identity (ccmessage, cclog: the id hashes the line *with*
-- its timestamp, so a replay always lands in the same time partition) keep their identities in
-- a unique index on their time partitions instead: they drop with their partition. A replay
-- of an expired message is stored again into an expired partition, which the next
-- maintenance drops: harmless. Identities of the other families stay in event_identities
-- after their events are dropped: their time can be the receive time (plain JSON, CloudEvents
-- without time), so a replay would land in the current partition and live on as a visible
-- duplicate; keeping the identity keeps it a duplicate.
CREATE UNIQUE INDEX events_ccmessage_identity ON collector.events_ccmessage (id, source, type, time);
CREATE UNIQUE INDEX events_cclog_identity ON collector.events_cclog (id, source, type, time);

-- How each family's events are cut into time partitions.
-- identity_scope: `global` — the identity lives in collector.event_identities (a replay is
-- recognised whatever its time); `partition` — the family's time is part of its identity, so
-- the unique index on its time partitions suffices.
CREATE TABLE collector.partition_policy (
    family         text PRIMARY KEY,
    period         text NOT NULL CHECK (period IN ('day', 'week', 'month')),
    identity_scope text NOT NULL DEFAULT 'global' CHECK (identity_scope IN ('global', 'partition'))
);
INSERT INTO collector.partition_policy (family, period, identity_scope) VALUES
    ('cdevents', 'month', 'global'), ('cloudevents', 'month', 'global'), ('raw', 'month', 'global'),
    ('ccmessage', 'day', 'partition'), ('cclog', 'day', 'partition');

COMMENT ON TABLE collector.partition_policy IS 'Per family: the length of its time partitions and where its identities live (global: collector.event_identities; partition: a unique index on its time partitions, for families whose time is part of the identity).';

CREATE TABLE collector.rejected_events (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL,
    received_via  text NOT NULL,
    reason        text NOT NULL,
    location      text,
    raw           text NOT NULL,
    raw_size      integer NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX rejected_events_received_at ON collector.rejected_events (received_at);

-- Creates the time partition of `family` holding `at`, when missing. Safe under concurrency.
CREATE FUNCTION collector.ensure_partition(family text, at timestamptz) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    period text;
    lower_bound timestamptz;
    partition_name text;
BEGIN
    SELECT p.period INTO STRICT period FROM collector.partition_policy p WHERE p.family = ensure_partition.family;
    lower_bound := date_trunc(period, at, 'UTC');
    partition_name := format('events_%s_%s', family, to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD'));
    IF to_regclass(format('collector.%I', partition_name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('collector.partition:' || partition_name));
    IF to_regclass(format('collector.%I', partition_name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    BEGIN
        -- Created apart, then attached: ATTACH PARTITION takes only a SHARE UPDATE EXCLUSIVE
        -- lock on the family's table, so readers and writers of the other partitions go on.
        -- (CREATE TABLE ... PARTITION OF takes an ACCESS EXCLUSIVE lock, and a reader that
        -- already holds one family while waiting for another could deadlock with ingest.)
        EXECUTE format('CREATE TABLE collector.%I (LIKE collector.events INCLUDING DEFAULTS)',
                       partition_name);
        EXECUTE format(
            'ALTER TABLE collector.%I ATTACH PARTITION collector.%I FOR VALUES FROM (%L) TO (%L)',
            'events_' || family, partition_name, lower_bound,
            lower_bound + ('1 ' || period)::interval
        );
    EXCEPTION WHEN duplicate_table THEN
        -- Created by a transaction that committed while we waited for the lock: an advisory
        -- lock does not refresh this session's catalog cache, so to_regclass could not tell.
        RETURN false;
    END;
    RETURN true;
END
$$;

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

-- Creates partitions from `behind` before now to `ahead` after now for every family, so that
-- ingest of current events never waits on DDL. Run at migration and periodically.
CREATE FUNCTION collector.ensure_partitions_ahead(ahead interval DEFAULT '14 days', behind interval DEFAULT '1 day')
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*)::integer FROM collector.create_partitions_ahead(ahead, behind)
$$;

-- Replays recognised by collector.ingest, counted per source for the Collector health
-- dashboard (api.duplicates): one row per batch and source that had any; a batch without
-- replays adds nothing.
CREATE TABLE collector.duplicates (
    received_at  timestamptz NOT NULL,
    received_via text NOT NULL,
    duplicates   integer NOT NULL
);
CREATE INDEX duplicates_received_at ON collector.duplicates (received_at);

COMMENT ON TABLE collector.duplicates IS 'Replays recognised by collector.ingest: one row per batch and source that had any.';

-- The ingest rule every client uses (the collector, psql, scripts): a whole batch in one call.
-- Event arrays are parallel (element i of each is event i); rejected arrays likewise.
-- An event whose identity (source, type, id) is already stored is a duplicate, not an error.
CREATE FUNCTION collector.ingest(
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
SET work_mem = '64MB'
-- One plan per statement, made once per connection: a plan made for each call's arrays costs
-- more than a small batch's whole insert (0.6 ms of 1.9 ms for one event), and a 2,000-event
-- batch runs as fast on the generic plan.
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    stored_positions integer[];
    duplicates integer[];
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
        -- One order of families (and of periods within each, below) for every batch: creating
        -- a partition locks its family's table until commit, so two batches creating partitions
        -- of the same families take those locks in the same order and cannot deadlock.
        ORDER BY u.f
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
                ORDER BY date_trunc(span.period, u.t, 'UTC')
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

    -- Most batches reject nothing: skip the statement (starting it costs more than a small
    -- batch's rows).
    IF cardinality(rejected_raws) > 0 THEN
        INSERT INTO collector.rejected_events (received_at, received_via, reason, location, raw,
                                               raw_size, metadata)
        SELECT r.received_at, r.received_via, r.reason, r.location, r.raw, r.size,
               coalesce(r.metadata::jsonb, '{}'::jsonb)
        FROM unnest(rejected_received_ats, rejected_received_vias, rejected_reasons,
                    rejected_locations, rejected_raws, rejected_sizes, rejected_metadatas)
             AS r(received_at, received_via, reason, location, raw, size, metadata);
        GET DIAGNOSTICS n_rejected = ROW_COUNT;
    END IF;

    -- Positions (1-based) of the events that were not stored because their identity was.
    IF cardinality(stored_positions) = coalesce(cardinality(ids), 0) THEN
        duplicates := '{}';
    ELSE
        duplicates := ARRAY(
            SELECT g FROM generate_series(1, coalesce(cardinality(ids), 0)) AS g
            WHERE NOT EXISTS (SELECT FROM unnest(stored_positions) AS s(p) WHERE s.p = g)
            ORDER BY g);
        -- Counted per source for api.duplicates: only batches with replays pay for it.
        INSERT INTO collector.duplicates (received_at, received_via, duplicates)
        SELECT max(u.received_at), u.received_via, count(*)
        FROM unnest(received_ats, received_vias) WITH ORDINALITY AS u(received_at, received_via, n)
        JOIN unnest(duplicates) AS d(p) ON d.p = u.n
        GROUP BY u.received_via;
    END IF;
    RETURN QUERY SELECT cardinality(stored_positions), duplicates, n_rejected;
END
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA collector FROM PUBLIC;
GRANT USAGE ON SCHEMA collector TO collector_writer;
GRANT EXECUTE ON FUNCTION collector.ingest TO collector_writer;

-- The public API -------------------------------------------------------------------------

CREATE VIEW api.events AS
SELECT seq, id, source, type, time, subject, family, subject_type, predicate, type_version,
       received_at, received_via, payload, metadata
FROM collector.events;

COMMENT ON VIEW api.events IS 'Every stored event, one row each; identity is (source, type, id). Filter on time to touch only the partitions of that range.';
COMMENT ON COLUMN api.events.seq IS 'Ingest order: a number increasing with the order events were stored (gaps allowed).';
COMMENT ON COLUMN api.events.id IS 'Event id: CloudEvents id or CDEvents context.id; for plain JSON a SHA-256 of its canonical JSON.';
COMMENT ON COLUMN api.events.source IS 'Event source: CloudEvents source or CDEvents context.source (a URI-reference).';
COMMENT ON COLUMN api.events.type IS 'Event type, e.g. dev.cdevents.pipelinerun.started.0.2.0.';
COMMENT ON COLUMN api.events.time IS 'When the event happened (CDEvents context.timestamp, CloudEvents time), else when it was received.';
COMMENT ON COLUMN api.events.subject IS 'CDEvents subject.id or the CloudEvents subject; null when absent.';
COMMENT ON COLUMN api.events.family IS 'Format family: cdevents, cloudevents, ccmessage (ClusterCockpit events), cclog (ClusterCockpit logs) or raw.';
COMMENT ON COLUMN api.events.subject_type IS 'CDEvents subject parsed from the type (pipelinerun, service, ...); null for other families.';
COMMENT ON COLUMN api.events.predicate IS 'CDEvents predicate parsed from the type (started, deployed, ...); null for other families.';
COMMENT ON COLUMN api.events.type_version IS 'Version of the event type parsed from a CDEvents type (e.g. 0.2.0); null for other families.';
COMMENT ON COLUMN api.events.received_at IS 'When collector received the event. A range of it (what arrived lately) is found through an index.';
COMMENT ON COLUMN api.events.received_via IS 'Name of the collector source that received the event (e.g. inbox).';
COMMENT ON COLUMN api.events.payload IS 'The original event document as sent (the whole CDEvent or CloudEvent).';
COMMENT ON COLUMN api.events.metadata IS 'Transport details: file name and line, headers, CloudEvent attributes of a wrapped CDEvent.';

CREATE VIEW api.rejected_events AS
SELECT seq, received_at, received_via, reason, location, raw, raw_size, metadata
FROM collector.rejected_events;

COMMENT ON VIEW api.rejected_events IS 'Input that could not become an event, with the reason; nothing invalid is silently dropped.';
COMMENT ON COLUMN api.rejected_events.seq IS 'Rejection order: increases with the order rejections were stored.';
COMMENT ON COLUMN api.rejected_events.received_at IS 'When collector received the input.';
COMMENT ON COLUMN api.rejected_events.received_via IS 'Name of the collector source that received the input.';
COMMENT ON COLUMN api.rejected_events.reason IS 'Why it was rejected, naming the field, e.g. "context.id: missing".';
COMMENT ON COLUMN api.rejected_events.location IS 'Where in the delivery: "line 3" of a JSON-lines file, "index 2" of an array; null for a whole document.';
COMMENT ON COLUMN api.rejected_events.raw IS 'The rejected input as text (first 64 KiB; invalid UTF-8 bytes escaped as \xNN).';
COMMENT ON COLUMN api.rejected_events.raw_size IS 'Size of the rejected input in bytes, before truncation.';
COMMENT ON COLUMN api.rejected_events.metadata IS 'Transport details: file name, headers, subject.';

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
-- Never JIT: the query is planned for any number of ids, so its estimates grow with the number
-- of time partitions; past jit_above_cost, PostgreSQL (built with LLVM, the default in most
-- distributions) JIT-compiled the plan on every call: 13 s for one unknown id on a database of
-- 23,000 events and 50 partitions, against 0.1 s without.
CREATE FUNCTION api.events_by_id(ids text[]) RETURNS SETOF api.events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan SET jit = off AS $$
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

REVOKE ALL ON FUNCTION collector.partition_scope_events_by_id(text[]) FROM PUBLIC;

COMMENT ON FUNCTION api.events_by_id(text[]) IS 'Events whose id is in ids, ordered by time; unknown ids are simply absent. One id can match several events of different source or type.';

CREATE FUNCTION api.event(id text) RETURNS SETOF api.events
LANGUAGE sql STABLE AS $$
    SELECT * FROM api.events_by_id(ARRAY[id])
$$;

COMMENT ON FUNCTION api.event(text) IS 'The event(s) with this id (usually one; several when sources or types share an id). No row when unknown.';

GRANT USAGE ON SCHEMA api TO collector_reader, collector_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO collector_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api TO collector_reader;

SELECT collector.ensure_partitions_ahead();
