-- collector.ingest keeps lifecycle and job state itself, from the rows its INSERT returns,
-- instead of two statement-level AFTER triggers on collector.events.
--
-- The triggers made PostgreSQL copy every inserted row, 1 KB payload included, into a
-- transition table, and each ran its statements once per call even for a batch with nothing
-- to fold. ingest is the one way events get in (DESIGN.md: every client uses it), so it now
-- collects what the fold reads — the subject and content of each stored CDEvent, each stored
-- ClusterCockpit job event — while it inserts, and runs a fold statement only when the batch
-- has something for it. The fold itself (order-independent, one lock order) is unchanged.
-- Also cheaper per call: the time partitions of a batch are looked up inline; the partition
-- function is called only when one is missing. And per event: events whose identity is
-- claimed in event_identities are stored with a plain INSERT (an INSERT ... ON CONFLICT makes
-- each row a speculative insertion, with a lock and a WAL record more, even into partitions
-- without a unique index); content rewriting (references given as plain strings, CDEvents 0.4
-- outcomes) is an expression, not a query per event.

DROP TRIGGER events_track_lifecycle ON collector.events;
DROP TRIGGER events_track_jobs ON collector.events;
DROP FUNCTION collector.track_lifecycle();
DROP FUNCTION collector.track_jobs();
DROP FUNCTION collector.content_value(text, jsonb);  -- only the old rewritten_content used it

-- What the lifecycle fold reads of one stored CDEvent with a subject.
CREATE TYPE collector.subject_event AS (
    subject_type   text,
    subject        text,
    subject_source text,   -- subject.source, else the event's context source
    predicate      text,
    time           timestamptz,
    type           text,
    id             text,
    source         text,
    content        jsonb   -- subject.content as sent
);

-- The same rewriting as collector.rewritten_content (content_value on every key), as one
-- expression: only the keys that need it are rebuilt and merged over the content. (A query
-- over jsonb_each ran as a query of its own per event: ~15 µs each.)
CREATE OR REPLACE FUNCTION collector.rewritten_content(content jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT content || jsonb_strip_nulls(jsonb_build_object(
        'outcome', CASE content->>'outcome' WHEN 'pass' THEN '"success"'::jsonb
                                            WHEN 'fail' THEN '"failure"'::jsonb END,
        'environment', CASE WHEN jsonb_typeof(content->'environment') = 'string'
                            THEN jsonb_build_object('id', content->'environment') END,
        'service', CASE WHEN jsonb_typeof(content->'service') = 'string'
                        THEN jsonb_build_object('id', content->'service') END,
        'pipelineRun', CASE WHEN jsonb_typeof(content->'pipelineRun') = 'string'
                            THEN jsonb_build_object('id', content->'pipelineRun') END,
        'testSuiteRun', CASE WHEN jsonb_typeof(content->'testSuiteRun') = 'string'
                             THEN jsonb_build_object('id', content->'testSuiteRun') END,
        'testCaseRun', CASE WHEN jsonb_typeof(content->'testCaseRun') = 'string'
                            THEN jsonb_build_object('id', content->'testCaseRun') END,
        'change', CASE WHEN jsonb_typeof(content->'change') = 'string'
                       THEN jsonb_build_object('id', content->'change') END,
        'repository', CASE WHEN jsonb_typeof(content->'repository') = 'string'
                           THEN jsonb_build_object('id', content->'repository') END))
$$;

-- The name of the time partition of `family` holding `at` (as ensure_partition creates it).
CREATE FUNCTION collector.partition_name(family text, period text, at timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT format('events_%s_%s', family, to_char(date_trunc(period, at, 'UTC') AT TIME ZONE 'UTC', 'YYYYMMDD'))
$$;

-- Folds stored CDEvents into collector.subjects, collector.deployments and
-- collector.service_state (see 0002). Called only by ingest, with the events it stored, and
-- runs on ingest's search_path (a SET here would cost each call a configuration change).
CREATE FUNCTION collector.fold_subject_events(batch collector.subject_event[], deploys boolean)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- One pass, no joins of aggregates: the batch has no statistics (the planner guesses its
    -- size), and joins of per-subject aggregates would become nested loops, quadratic in the
    -- batch. The events are sorted once, by subject and stamp, and aggregated in that order
    -- (an ORDER BY inside each aggregate would sort every subject's events once per aggregate):
    -- jsonb_object_agg keeps the last of duplicate keys and jsonb_merge the last value of each
    -- key, so both end with the newest. Status is the greatest (rank, time, status), packed as
    -- text that sorts bytewise. OFFSET 0 keeps each derived column computed once per event.
    INSERT INTO collector.subjects AS s
        (subject_type, subject_source, subject_id, first_time, last_time, first_stamp, last_stamp,
         predicate_times, status, status_rank, status_time, content, events)
    SELECT subject_type, subject_source, subject_id, min(time), max(time), min(stamp), max(stamp),
           jsonb_object_agg(predicate, time),
           substr(max(status_key), 21), max(rank),
           -- The packed time is the stamp's: microseconds since 1970, shifted (event_stamp).
           'epoch'::timestamptz
             + ((substr(max(status_key), 2, 19)::bigint - 4611686018427387904)::text
                || ' microseconds')::interval,
           collector.jsonb_merge(collector.event_content(event_subject_type, subject_id, content)),
           count(*)::integer
    FROM (
        SELECT subject_type, event_subject_type, subject_source, subject_id, predicate, time,
               rank, stamp, rank::text || substr(stamp, 1, 19) || status COLLATE "C" AS status_key,
               content
        FROM (
            SELECT l.tracked_as AS subject_type, n.subject_type AS event_subject_type,
                   n.subject_source, n.subject AS subject_id, n.predicate, n.time, l.rank, l.status,
                   collector.event_stamp(n.time, l.rank, n.type, n.id, n.source) COLLATE "C" AS stamp,
                   n.content
            FROM unnest(batch) AS n
            JOIN collector.lifecycle_states l
              ON l.subject_type = n.subject_type AND l.predicate = n.predicate
            OFFSET 0
        ) AS derived
        ORDER BY subject_type, subject_id, subject_source, stamp
    ) AS ev
    GROUP BY subject_type, subject_id, subject_source
    -- One lock order for every batch, so concurrent batches never deadlock on subject rows.
    ORDER BY subject_type, subject_id, subject_source
    ON CONFLICT (subject_type, subject_source, subject_id) DO UPDATE SET
        first_time = least(s.first_time, excluded.first_time),
        last_time = greatest(s.last_time, excluded.last_time),
        first_stamp = least(s.first_stamp, excluded.first_stamp),
        last_stamp = greatest(s.last_stamp, excluded.last_stamp),
        -- Events usually arrive in order: all of the batch's events come after the folded ones.
        predicate_times = CASE WHEN excluded.first_stamp > s.last_stamp
            THEN s.predicate_times || excluded.predicate_times
            ELSE collector.latest_times(s.predicate_times, excluded.predicate_times) END,
        status = CASE WHEN (excluded.status_rank, excluded.status_time, excluded.status)
                           > (s.status_rank, s.status_time, s.status)
            THEN excluded.status ELSE s.status END,
        status_time = CASE WHEN (excluded.status_rank, excluded.status_time, excluded.status)
                                > (s.status_rank, s.status_time, s.status)
            THEN excluded.status_time ELSE s.status_time END,
        status_rank = greatest(s.status_rank, excluded.status_rank),
        -- Newest value per key: a plain merge when one side is wholly newer; when the batch
        -- interleaves with what was folded (rare), fold the subject's stored events again
        -- (ingest stored this batch's events in an earlier statement: refold sees them).
        content = CASE
            WHEN excluded.first_stamp > s.last_stamp THEN s.content || excluded.content
            WHEN excluded.last_stamp < s.first_stamp THEN excluded.content || s.content
            ELSE collector.refold_content(s.subject_type, s.subject_source, s.subject_id,
                                          least(s.first_time, excluded.first_time),
                                          greatest(s.last_time, excluded.last_time), s.content) END,
        events = s.events + excluded.events;

    IF NOT deploys THEN
        RETURN;
    END IF;
    WITH d AS (
        INSERT INTO collector.deployments
            (time, environment, service, artifact_id, action, event_id, event_source, event_type)
        SELECT n.time, collector.ref_id(n.content->'environment'), n.subject,
               n.content->>'artifactId', n.predicate, n.id, n.source, n.type
        FROM unnest(batch) AS n
        WHERE n.subject_type = 'service'
          AND n.predicate IN ('deployed', 'upgraded', 'rolledback', 'removed')
        ON CONFLICT DO NOTHING
        RETURNING *
    )
    INSERT INTO collector.service_state AS s (environment, service, artifact_id, last_action, since)
    SELECT DISTINCT ON (environment, service) environment, service, artifact_id, action, time
    FROM d WHERE environment IS NOT NULL
    -- The latest by event time; at equal times the later step (removed > rolledback > upgraded
    -- > deployed), so that the state does not depend on arrival order.
    ORDER BY environment, service, time DESC,
             array_position(ARRAY['deployed', 'upgraded', 'rolledback', 'removed'], action) DESC
    ON CONFLICT (environment, service) DO UPDATE SET
        artifact_id = excluded.artifact_id, last_action = excluded.last_action, since = excluded.since
    WHERE (excluded.since, array_position(ARRAY['deployed', 'upgraded', 'rolledback', 'removed'],
                                          excluded.last_action))
       >= (s.since, array_position(ARRAY['deployed', 'upgraded', 'rolledback', 'removed'], s.last_action));
END
$$;

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
SET work_mem = '64MB'
-- One plan per statement, made once per connection: a plan made for each call's arrays costs
-- more than a small batch's whole insert (0.6 ms of 1.9 ms for one event), and a 2,000-event
-- batch runs as fast on the generic plan.
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    stored_positions integer[] := '{}';
    duplicates integer[];
    n_rejected integer := 0;
    span record;
    partition_scoped text[] := '{}';  -- families of the batch whose identity scope is `partition`
    subject_events collector.subject_event[];
    deploys boolean;
    job_events collector.events[];
BEGIN
    -- Time partitions first. A batch usually falls in one period per family: look at its
    -- earliest and latest event rather than at every event, and call ensure_partition (which
    -- takes a lock to create one) only for a partition that is missing.
    FOR span IN
        SELECT u.f AS family, p.period, p.identity_scope, min(u.t) AS earliest, max(u.t) AS latest
        FROM unnest(families, times) AS u(f, t)
        JOIN collector.partition_policy p ON p.family = u.f
        GROUP BY u.f, p.period, p.identity_scope
        -- One order of families (and of periods within each, below) for every batch: creating
        -- a partition locks its family's table until commit, so two batches creating partitions
        -- of the same families take those locks in the same order and cannot deadlock.
        ORDER BY u.f
    LOOP
        IF span.identity_scope = 'partition' THEN
            partition_scoped := partition_scoped || span.family;
        END IF;
        IF date_trunc(span.period, span.earliest, 'UTC')
           = date_trunc(span.period, span.latest, 'UTC') THEN
            IF to_regclass(format('collector.%I', collector.partition_name(
                    span.family, span.period, span.earliest))) IS NULL THEN
                PERFORM collector.ensure_partition(span.family, span.earliest);
            END IF;
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
    -- Only the kept events are then read in full, their payloads parsed and stored: all of them,
    -- so a plain INSERT (ON CONFLICT would make every row a speculative insertion — a lock, an
    -- extra WAL record — though these partitions have no unique index to conflict with). The
    -- arrays are unnested in the select list, which streams them (unnest in FROM would copy
    -- each one into a tuplestore first); element n of every array is event n. What the stored
    -- events give the lifecycle and job folds is collected on the way out.
    IF NOT families <@ partition_scoped THEN  -- (an unknown family goes here, and fails)
        WITH firsts AS MATERIALIZED (
            SELECT DISTINCT ON (u.id COLLATE "C", u.source COLLATE "C", u.type COLLATE "C")
                   u.n, u.id, u.source, u.type, u.time
            FROM (SELECT unnest(ids) AS id, unnest(sources) AS source, unnest(types) AS type,
                         unnest(times) AS time, unnest(families) AS family,
                         generate_series(1, cardinality(ids)) AS n) AS u
            WHERE u.family <> ALL (partition_scoped)
            ORDER BY u.id COLLATE "C", u.source COLLATE "C", u.type COLLATE "C", u.n
        ), fresh AS (
            INSERT INTO collector.event_identities (id, source, type, time)
            SELECT f.id, f.source, f.type, f.time FROM firsts f
            ORDER BY f.id COLLATE "C", f.source COLLATE "C", f.type COLLATE "C"
            ON CONFLICT DO NOTHING
            RETURNING event_identities.id, event_identities.source, event_identities.type
        ), kept AS MATERIALIZED (
            SELECT f.n FROM firsts f
            JOIN fresh r ON r.id = f.id AND r.source = f.source AND r.type = f.type
        ), inserted AS (
            INSERT INTO collector.events AS e (family, time, id, source, type, subject,
                                               subject_type, predicate, type_version, received_at,
                                               received_via, payload, metadata)
            SELECT u.family, u.time, u.id, u.source, u.type, u.subject, u.subject_type,
                   u.predicate, u.type_version, u.received_at, u.received_via, u.payload::jsonb,
                   coalesce(u.metadata::jsonb, '{}'::jsonb)
            FROM (SELECT unnest(ids) AS id, unnest(sources) AS source, unnest(types) AS type,
                         unnest(times) AS time, unnest(families) AS family,
                         unnest(subjects) AS subject, unnest(subject_types) AS subject_type,
                         unnest(predicates) AS predicate, unnest(type_versions) AS type_version,
                         unnest(payloads) AS payload, unnest(metadatas) AS metadata,
                         unnest(received_ats) AS received_at, unnest(received_vias) AS received_via,
                         generate_series(1, cardinality(ids)) AS n) AS u
            JOIN kept k ON k.n = u.n
            RETURNING CASE WHEN e.family = 'cdevents' AND e.subject IS NOT NULL THEN
                          ROW(e.subject_type, e.subject,
                              coalesce(nullif(e.payload->'subject'->>'source', ''), e.source),
                              e.predicate, e.time, e.type, e.id, e.source,
                              e.payload->'subject'->'content')::collector.subject_event
                      END AS subject_event
        )
        -- (IS NOT NULL of a row is true only when every field is: IS DISTINCT FROM NULL it is.)
        SELECT (SELECT coalesce(array_agg(k.n), '{}') FROM kept k),
               array_agg(s.subject_event) FILTER (WHERE s.subject_event IS DISTINCT FROM NULL),
               bool_or((s.subject_event).subject_type = 'service'
                       AND (s.subject_event).predicate
                           IN ('deployed', 'upgraded', 'rolledback', 'removed'))
        INTO stored_positions, subject_events, deploys
        FROM inserted s;
    END IF;

    -- Families whose time is part of the identity: the unique index on their time partition
    -- decides, so these inserts are ON CONFLICT DO NOTHING (duplicates within the batch are
    -- left out first, the first occurrence kept, as above).
    IF cardinality(partition_scoped) > 0 THEN
        WITH firsts AS MATERIALIZED (
            SELECT DISTINCT ON (u.id COLLATE "C", u.source COLLATE "C", u.type COLLATE "C")
                   u.n, u.id, u.source, u.type
            FROM (SELECT unnest(ids) AS id, unnest(sources) AS source, unnest(types) AS type,
                         unnest(families) AS family,
                         generate_series(1, cardinality(ids)) AS n) AS u
            WHERE u.family = ANY (partition_scoped)
            ORDER BY u.id COLLATE "C", u.source COLLATE "C", u.type COLLATE "C", u.n
        ), inserted AS (
            INSERT INTO collector.events AS e (family, time, id, source, type, subject,
                                               subject_type, predicate, type_version, received_at,
                                               received_via, payload, metadata)
            SELECT u.family, u.time, u.id, u.source, u.type, u.subject, u.subject_type,
                   u.predicate, u.type_version, u.received_at, u.received_via, u.payload::jsonb,
                   coalesce(u.metadata::jsonb, '{}'::jsonb)
            FROM (SELECT unnest(ids) AS id, unnest(sources) AS source, unnest(types) AS type,
                         unnest(times) AS time, unnest(families) AS family,
                         unnest(subjects) AS subject, unnest(subject_types) AS subject_type,
                         unnest(predicates) AS predicate, unnest(type_versions) AS type_version,
                         unnest(payloads) AS payload, unnest(metadatas) AS metadata,
                         unnest(received_ats) AS received_at, unnest(received_vias) AS received_via,
                         generate_series(1, cardinality(ids)) AS n) AS u
            JOIN firsts k ON k.n = u.n
            ON CONFLICT DO NOTHING
            RETURNING e.id, e.source, e.type,
                      CASE WHEN e.family = 'ccmessage'
                            AND e.type IN ('org.clustercockpit.event.start_job',
                                           'org.clustercockpit.event.stop_job')
                           THEN e END AS job_event
        )
        SELECT stored_positions || coalesce(array_agg(k.n), '{}'),
               array_agg(s.job_event) FILTER (WHERE s.job_event IS DISTINCT FROM NULL)
        INTO stored_positions, job_events
        FROM firsts k
        JOIN inserted s ON s.id = k.id AND s.source = k.source AND s.type = k.type;
    END IF;

    -- Lifecycle and job state, from the events just stored (never a duplicate: those were not
    -- inserted, so are never folded twice).
    IF subject_events IS NOT NULL THEN
        PERFORM collector.fold_subject_events(subject_events, coalesce(deploys, false));
    END IF;
    IF job_events IS NOT NULL THEN
        PERFORM collector.merge_job_events(job_events);
    END IF;

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

REVOKE ALL ON FUNCTION collector.partition_name(text, text, timestamptz),
    collector.fold_subject_events(collector.subject_event[], boolean) FROM PUBLIC;
