-- HPC views (cluster events, logs, jobs) and retention by dropping whole time partitions.
--
-- Derived state when partitions are dropped, on purpose: identities of ccmessage and cclog
-- drop with their partitions, those of the other families stay in collector.event_identities
-- (see 0001); collector.jobs (one row per job) outlives the events it was built from: a job's
-- summary is small and worth more than the raw messages. Its merge is idempotent, so a
-- replayed job event after its identity expired changes nothing.

-- Partitions: dropped when expired -----------------------------------------------------

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

REVOKE ALL ON FUNCTION
    collector.time_partitions(text),
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
