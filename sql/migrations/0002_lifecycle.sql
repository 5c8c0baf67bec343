-- CDEvents lifecycle state, kept incrementally at ingest; the delivery views and DORA functions
-- of `api` built on it; indexes that serve `api.events` filters; `api.schema_version()`.
--
-- A statement-level trigger on collector.events sees each ingested batch once (duplicates are
-- never inserted, so never counted twice) and folds it into one row per subject instance
-- (subject type, source, id). Dashboard queries then read state rows for their time range
-- instead of re-aggregating all events.
--
-- The fold is order-independent: every merge (earliest/latest time, latest time per predicate,
-- highest-ranked status, newest value per content key, latest event) picks by an order on the
-- events themselves, never by arrival: an event's stamp [time as epoch, rank of its predicate,
-- type, id, source] orders by time, then lifecycle stage, then identity. So a `finished` before
-- its `started`, replays and any split of the events into batches give the same rows.

-- Filters of api.events on type, source or subject, with or without a time range, use these
-- btree indexes (time ranges alone use the time index of 0001). Each one costs ingest work, so
-- there are three, one per filter users type; each includes time so that a filter plus a time
-- range or `ORDER BY time` is one index range scan. Events of most families have no subject:
-- that index is partial. The (type, time) index also serves the lookups of api.events_by_id.
CREATE INDEX events_type_time ON collector.events (type, time);
CREATE INDEX events_source_time ON collector.events (source, time);
CREATE INDEX events_subject_time ON collector.events (subject, time) WHERE subject IS NOT NULL;

-- Which predicate moves a subject to which status. Status is decided by the highest rank seen,
-- whatever the arrival order (a `finished` before its `started` is finished); equal ranks go to
-- the later event. CDEvents 0.3's testcase/testsuite are tracked as testcaserun/testsuiterun.
CREATE TABLE collector.lifecycle_states (
    subject_type text NOT NULL,
    predicate    text NOT NULL,
    rank         smallint NOT NULL,
    status       text NOT NULL,
    tracked_as   text NOT NULL,
    PRIMARY KEY (subject_type, predicate)
);
INSERT INTO collector.lifecycle_states (subject_type, predicate, rank, status, tracked_as)
SELECT s, p, r, st, coalesce(t, s) FROM (VALUES
    ('pipelinerun', 'queued', 1, 'queued', NULL), ('pipelinerun', 'started', 2, 'running', NULL),
    ('pipelinerun', 'finished', 3, 'finished', NULL),
    ('taskrun', 'started', 2, 'running', NULL), ('taskrun', 'finished', 3, 'finished', NULL),
    ('build', 'queued', 1, 'queued', NULL), ('build', 'started', 2, 'running', NULL),
    ('build', 'finished', 3, 'finished', NULL),
    ('testcaserun', 'queued', 1, 'queued', NULL), ('testcaserun', 'started', 2, 'running', NULL),
    ('testcaserun', 'finished', 3, 'finished', NULL), ('testcaserun', 'skipped', 3, 'skipped', NULL),
    ('testcase', 'queued', 1, 'queued', 'testcaserun'), ('testcase', 'started', 2, 'running', 'testcaserun'),
    ('testcase', 'finished', 3, 'finished', 'testcaserun'),
    ('testsuiterun', 'queued', 1, 'queued', NULL), ('testsuiterun', 'started', 2, 'running', NULL),
    ('testsuiterun', 'finished', 3, 'finished', NULL),
    ('testsuite', 'started', 2, 'running', 'testsuiterun'), ('testsuite', 'finished', 3, 'finished', 'testsuiterun'),
    ('artifact', 'packaged', 1, 'packaged', NULL), ('artifact', 'signed', 2, 'signed', NULL),
    ('artifact', 'published', 3, 'published', NULL), ('artifact', 'downloaded', 3, 'published', NULL),
    ('artifact', 'deleted', 4, 'deleted', NULL),
    ('change', 'created', 1, 'open', NULL), ('change', 'updated', 1, 'open', NULL),
    ('change', 'reviewed', 1, 'open', NULL), ('change', 'merged', 3, 'merged', NULL),
    ('change', 'abandoned', 3, 'abandoned', NULL),
    ('branch', 'created', 1, 'active', NULL), ('branch', 'deleted', 3, 'deleted', NULL),
    ('repository', 'created', 1, 'active', NULL), ('repository', 'modified', 1, 'active', NULL),
    ('repository', 'deleted', 3, 'deleted', NULL),
    ('environment', 'created', 1, 'active', NULL), ('environment', 'modified', 1, 'active', NULL),
    ('environment', 'deleted', 3, 'deleted', NULL),
    ('incident', 'detected', 1, 'open', NULL), ('incident', 'reported', 1, 'open', NULL),
    ('incident', 'resolved', 3, 'resolved', NULL),
    ('ticket', 'created', 1, 'open', NULL), ('ticket', 'updated', 1, 'open', NULL),
    ('ticket', 'closed', 3, 'closed', NULL)
) AS v(s, p, r, st, t);

-- One row per subject instance.
CREATE TABLE collector.subjects (
    subject_type    text NOT NULL,
    subject_source  text NOT NULL,
    subject_id      text NOT NULL,
    first_time      timestamptz NOT NULL,   -- earliest event of this subject
    last_time       timestamptz NOT NULL,   -- latest event of this subject
    first_stamp     text COLLATE "C" NOT NULL,  -- event_stamp of the earliest event
    last_stamp      text COLLATE "C" NOT NULL,  -- event_stamp of the latest event
    predicate_times jsonb NOT NULL,         -- {"started": "<time>", ...}: latest time per predicate
    status          text NOT NULL,
    status_rank     smallint NOT NULL,
    status_time     timestamptz NOT NULL,
    content         jsonb NOT NULL,         -- subject.content of all events, newest value per key
    events          integer NOT NULL,
    -- Id before source: the key also serves lookups by id alone (one index less to keep).
    PRIMARY KEY (subject_type, subject_id, subject_source)
);
CREATE INDEX subjects_first_time ON collector.subjects (subject_type, first_time);
-- Change failure rate looks for the incidents of one service in one environment after a time.
CREATE INDEX subjects_incident_service ON collector.subjects
    ((content->'service'->>'id'), (content->'environment'->>'id'), first_time)
    WHERE subject_type = 'incident';

-- The subjects with their latest event as sent, for the views of `api`. The payload is not
-- copied into subjects at ingest (a second copy of every subject's latest event was a third of
-- the lifecycle fold's cost): last_stamp names that event (its time, type, id and source), and
-- the subquery finds it by an index probe in the one time partition of last_time.
-- Views are flattened into the queries that use them, so only a query that selects
-- last_payload runs the lookup. An event that retention has dropped gives null.
CREATE VIEW collector.subject_rows AS
SELECT s.*,
       (SELECT e.payload FROM collector.events e
        WHERE e.family = 'cdevents' AND e.time = s.last_time
          AND e.type = split_part(substr(s.last_stamp, 21), E'\x1f', 1)
          AND e.id || E'\x1f' || e.source
              = substr(s.last_stamp, 22 + length(split_part(substr(s.last_stamp, 21), E'\x1f', 1)))
       ) AS last_payload
FROM collector.subjects s;

-- Every deployment-like service event, narrow and indexed for DORA.
CREATE TABLE collector.deployments (
    time          timestamptz NOT NULL,
    environment   text,
    service       text NOT NULL,
    artifact_id   text,
    action        text NOT NULL,   -- deployed | upgraded | rolledback | removed
    event_id      text NOT NULL,
    event_source  text NOT NULL,
    event_type    text NOT NULL,
    PRIMARY KEY (event_id, event_source, event_type)
);
CREATE INDEX deployments_time ON collector.deployments (time);
CREATE INDEX deployments_service ON collector.deployments (environment, service, time);

-- What runs where now: the latest deployment-like event per environment and service.
CREATE TABLE collector.service_state (
    environment  text NOT NULL,
    service      text NOT NULL,
    artifact_id  text,
    last_action  text NOT NULL,
    since        timestamptz NOT NULL,
    PRIMARY KEY (environment, service)
);

-- A CDEvents reference is an object {id, source}; some producers send a plain string.
CREATE FUNCTION collector.ref_id(ref jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(ref) WHEN 'object' THEN ref->>'id' WHEN 'string' THEN ref #>> '{}' END
$$;

-- Content as stored: a reference given as a plain string becomes {"id": "<string>"}, so views
-- read every reference the same way (content->'environment'->>'id'); outcomes get one
-- vocabulary. (Views cannot call private functions: readers lack EXECUTE on them.)
CREATE FUNCTION collector.content_value(key text, value jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(value) = 'string'
                 AND key IN ('environment', 'service', 'pipelineRun', 'testSuiteRun', 'testCaseRun',
                             'change', 'repository')
                THEN jsonb_build_object('id', value)
                -- CDEvents 0.4 test outcomes pass / fail are 0.5's success / failure.
                WHEN key = 'outcome' AND value = '"pass"' THEN '"success"'
                WHEN key = 'outcome' AND value = '"fail"' THEN '"failure"'
                ELSE value END
$$;

-- Latest time per predicate of two {"predicate": "<time>"} objects.
CREATE FUNCTION collector.latest_times(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(key, t), '{}')
    FROM (SELECT key, max((value #>> '{}')::timestamptz) AS t
          FROM (SELECT * FROM jsonb_each(a) UNION ALL SELECT * FROM jsonb_each(b)) AS x
          GROUP BY key) AS y
$$;

-- Shallow merge of objects in aggregation order: the last value of each key wins.
CREATE AGGREGATE collector.jsonb_merge(jsonb) (SFUNC = jsonb_concat, STYPE = jsonb, INITCOND = '{}');

-- An event's place in its subject's history, as text that sorts bytewise: by time, then
-- lifecycle stage, then type (a later spec version after an earlier one), id and source.
CREATE FUNCTION collector.event_stamp(t timestamptz, rank smallint, type text, id text, source text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- Microseconds since 1970, shifted to stay positive and fixed-width.
    SELECT lpad(((extract(epoch FROM t) * 1000000)::bigint + 4611686018427387904)::text, 19, '0')
           || rank::text || type || E'\x1f' || id || E'\x1f' || source
$$;

CREATE FUNCTION collector.rewritten_content(content jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_object_agg(key, collector.content_value(key, value)) FROM jsonb_each(content)
$$;

-- The subject content one event contributes, as stored (see content_value). Checks the few keys
-- that need rewriting before rewriting anything: most events need none. Pass `content` as a
-- column, not an expression: it is referenced several times.
CREATE FUNCTION collector.event_content(subject_type text, subject text, content jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE subject_type
               -- CDEvents 0.3's testcase / testsuite subject is the test case / suite itself.
               WHEN 'testcase' THEN jsonb_build_object('testCase', jsonb_build_object('id', subject))
               WHEN 'testsuite' THEN jsonb_build_object('testSuite', jsonb_build_object('id', subject))
               ELSE '{}'::jsonb END
        || CASE WHEN jsonb_typeof(content) IS DISTINCT FROM 'object' THEN '{}'::jsonb
                WHEN content->>'outcome' IN ('pass', 'fail')
                  OR jsonb_typeof(content->'environment') = 'string'
                  OR jsonb_typeof(content->'service') = 'string'
                  OR jsonb_typeof(content->'pipelineRun') = 'string'
                  OR jsonb_typeof(content->'testSuiteRun') = 'string'
                  OR jsonb_typeof(content->'testCaseRun') = 'string'
                  OR jsonb_typeof(content->'change') = 'string'
                  OR jsonb_typeof(content->'repository') = 'string'
                THEN collector.rewritten_content(content)
                ELSE content END
$$;

-- The content of one subject folded again from its stored events, over `known` (what was
-- folded before; it keeps keys whose events retention has dropped). Ingest needs it only when
-- a batch's events interleave in time with those already folded; VOLATILE so that it sees
-- what concurrent batches committed before this one took the subject's row lock.
CREATE FUNCTION collector.refold_content(
    subject_type text, subject_source text, subject_id text,
    from_time timestamptz, to_time timestamptz, known jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT known || coalesce(collector.jsonb_merge(content ORDER BY stamp), '{}')
    FROM (SELECT collector.event_content(n.subject_type, n.subject, c.content) AS content,
                 collector.event_stamp(n.time, l.rank, n.type, n.id, n.source) COLLATE "C" AS stamp
          FROM collector.events n
          JOIN collector.lifecycle_states l
            ON l.subject_type = n.subject_type AND l.predicate = n.predicate
          CROSS JOIN LATERAL (SELECT n.payload->'subject'->'content' AS content OFFSET 0) AS c
          WHERE n.family = 'cdevents' AND n.subject = refold_content.subject_id
            AND n.time BETWEEN from_time AND to_time
            AND l.tracked_as = refold_content.subject_type
            AND coalesce(nullif(n.payload->'subject'->>'source', ''), n.source)
                = refold_content.subject_source) AS e
$$;

CREATE FUNCTION collector.track_lifecycle() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET work_mem = '64MB' AS $$
BEGIN
    -- One pass, no joins: the transition table has no statistics (the planner guesses one
    -- row), and joins of per-subject aggregates then become nested loops, quadratic in the
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
                   coalesce(nullif(n.payload->'subject'->>'source', ''), n.source) AS subject_source,
                   n.subject AS subject_id, n.predicate, n.time, l.rank, l.status,
                   collector.event_stamp(n.time, l.rank, n.type, n.id, n.source) COLLATE "C" AS stamp,
                   n.payload->'subject'->'content' AS content
            FROM new_events n
            JOIN collector.lifecycle_states l
              ON l.subject_type = n.subject_type AND l.predicate = n.predicate
            WHERE n.family = 'cdevents' AND n.subject IS NOT NULL
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
        -- interleaves with what was folded (rare), fold the subject's stored events again.
        content = CASE
            WHEN excluded.first_stamp > s.last_stamp THEN s.content || excluded.content
            WHEN excluded.last_stamp < s.first_stamp THEN excluded.content || s.content
            ELSE collector.refold_content(s.subject_type, s.subject_source, s.subject_id,
                                          least(s.first_time, excluded.first_time),
                                          greatest(s.last_time, excluded.last_time), s.content) END,
        events = s.events + excluded.events;

    WITH d AS (
        INSERT INTO collector.deployments
            (time, environment, service, artifact_id, action, event_id, event_source, event_type)
        SELECT n.time, collector.ref_id(n.payload->'subject'->'content'->'environment'),
               n.subject, n.payload->'subject'->'content'->>'artifactId', n.predicate,
               n.id, n.source, n.type
        FROM new_events n
        WHERE n.family = 'cdevents' AND n.subject_type = 'service' AND n.subject IS NOT NULL
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

    RETURN NULL;
END
$$;

CREATE TRIGGER events_track_lifecycle AFTER INSERT ON collector.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION collector.track_lifecycle();

-- The delivery views -----------------------------------------------------------------------
-- One row per subject instance (subject id + source). Every view has `time` (when the
-- lifecycle began: filter on it, it is indexed), `last_event_at`, `events` and `last_payload`.

CREATE VIEW api.pipeline_runs AS
SELECT s.subject_id AS run_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'pipelineName' AS pipeline_name, s.status, s.content->>'outcome' AS outcome,
       (s.predicate_times->>'queued')::timestamptz AS queued_at,
       (s.predicate_times->>'started')::timestamptz AS started_at,
       (s.predicate_times->>'finished')::timestamptz AS finished_at,
       extract(epoch FROM (s.predicate_times->>'finished')::timestamptz
                        - (s.predicate_times->>'started')::timestamptz)::double precision AS duration_s,
       extract(epoch FROM (s.predicate_times->>'started')::timestamptz
                        - (s.predicate_times->>'queued')::timestamptz)::double precision AS queue_s,
       coalesce(s.content->>'uri', s.content->>'url') AS url, s.content->>'errors' AS errors,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'pipelinerun';

COMMENT ON VIEW api.pipeline_runs IS 'CI/CD pipeline runs, one row per run (CDEvents pipelinerun queued / started / finished), kept up to date at ingest. Status is decided by the most advanced predicate seen, whatever the arrival order, and never guessed: a run with no finished event stays running (it is not "cancelled").';
COMMENT ON COLUMN api.pipeline_runs.run_id IS 'The run: CDEvents subject.id.';
COMMENT ON COLUMN api.pipeline_runs.source IS 'Where the run lives: subject.source, else the context.source of its events. (run_id, source) identifies a row.';
COMMENT ON COLUMN api.pipeline_runs.time IS 'When the run''s lifecycle began: the time of its earliest event, whatever the arrival order. Indexed: filter on it.';
COMMENT ON COLUMN api.pipeline_runs.pipeline_name IS 'Name of the pipeline (content.pipelineName).';
COMMENT ON COLUMN api.pipeline_runs.status IS 'queued, running or finished: the most advanced predicate seen (finished > started > queued), whatever the arrival order.';
COMMENT ON COLUMN api.pipeline_runs.outcome IS 'Outcome reported by the finished event (success, failure, error, cancel, ...; CDEvents 0.4 pass / fail read as success / failure); null until then.';
COMMENT ON COLUMN api.pipeline_runs.queued_at IS 'Time of the queued event (the latest, if several); null when none arrived.';
COMMENT ON COLUMN api.pipeline_runs.started_at IS 'Time of the started event (the latest, if several); null when none arrived.';
COMMENT ON COLUMN api.pipeline_runs.finished_at IS 'Time of the finished event (the latest, if several); null while unfinished.';
COMMENT ON COLUMN api.pipeline_runs.duration_s IS 'Run time in seconds: finished_at - started_at; null unless both are known.';
COMMENT ON COLUMN api.pipeline_runs.queue_s IS 'Time spent queued in seconds: started_at - queued_at; null unless both are known.';
COMMENT ON COLUMN api.pipeline_runs.url IS 'Link to the run (content.uri of CDEvents 0.5, content.url of 0.3 / 0.4).';
COMMENT ON COLUMN api.pipeline_runs.errors IS 'Errors reported by the finished event (content.errors).';
COMMENT ON COLUMN api.pipeline_runs.last_event_at IS 'Time of the run''s latest event.';
COMMENT ON COLUMN api.pipeline_runs.events IS 'Number of distinct events of this run (replays are not counted).';
COMMENT ON COLUMN api.pipeline_runs.last_payload IS 'The run''s latest event as sent (latest by event time; at equal times the more advanced predicate); null once retention has dropped that event.';

CREATE VIEW api.task_runs AS
SELECT s.subject_id AS run_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'taskName' AS task_name, s.content->'pipelineRun'->>'id' AS pipeline_run_id,
       s.status, s.content->>'outcome' AS outcome,
       (s.predicate_times->>'started')::timestamptz AS started_at,
       (s.predicate_times->>'finished')::timestamptz AS finished_at,
       extract(epoch FROM (s.predicate_times->>'finished')::timestamptz
                        - (s.predicate_times->>'started')::timestamptz)::double precision AS duration_s,
       coalesce(s.content->>'uri', s.content->>'url') AS url, s.content->>'errors' AS errors,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'taskrun';

COMMENT ON VIEW api.task_runs IS 'Task runs (steps of a pipeline run), one row per run (CDEvents taskrun started / finished), kept up to date at ingest. A run with no finished event stays running.';
COMMENT ON COLUMN api.task_runs.run_id IS 'The task run: CDEvents subject.id.';
COMMENT ON COLUMN api.task_runs.source IS 'Where the run lives: subject.source, else the context.source of its events. (run_id, source) identifies a row.';
COMMENT ON COLUMN api.task_runs.time IS 'When the run''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.task_runs.task_name IS 'Name of the task (content.taskName).';
COMMENT ON COLUMN api.task_runs.pipeline_run_id IS 'The pipeline run this task belongs to (content.pipelineRun.id, or the plain string given); joins api.pipeline_runs.run_id.';
COMMENT ON COLUMN api.task_runs.status IS 'running or finished: the most advanced predicate seen, whatever the arrival order.';
COMMENT ON COLUMN api.task_runs.outcome IS 'Outcome reported by the finished event (success, failure, error, cancel, ...); null until then.';
COMMENT ON COLUMN api.task_runs.started_at IS 'Time of the started event; null when none arrived.';
COMMENT ON COLUMN api.task_runs.finished_at IS 'Time of the finished event; null while unfinished.';
COMMENT ON COLUMN api.task_runs.duration_s IS 'Run time in seconds: finished_at - started_at; null unless both are known.';
COMMENT ON COLUMN api.task_runs.url IS 'Link to the task run (content.uri of CDEvents 0.5, content.url of 0.3 / 0.4).';
COMMENT ON COLUMN api.task_runs.errors IS 'Errors reported by the finished event (content.errors).';
COMMENT ON COLUMN api.task_runs.last_event_at IS 'Time of the run''s latest event.';
COMMENT ON COLUMN api.task_runs.events IS 'Number of distinct events of this run (replays are not counted).';
COMMENT ON COLUMN api.task_runs.last_payload IS 'The run''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.builds AS
SELECT s.subject_id AS build_id, s.subject_source AS source, s.first_time AS time, s.status,
       (s.predicate_times->>'queued')::timestamptz AS queued_at,
       (s.predicate_times->>'started')::timestamptz AS started_at,
       (s.predicate_times->>'finished')::timestamptz AS finished_at,
       extract(epoch FROM (s.predicate_times->>'finished')::timestamptz
                        - (s.predicate_times->>'started')::timestamptz)::double precision AS duration_s,
       extract(epoch FROM (s.predicate_times->>'started')::timestamptz
                        - (s.predicate_times->>'queued')::timestamptz)::double precision AS queue_s,
       s.content->>'artifactId' AS artifact_id,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'build';

COMMENT ON VIEW api.builds IS 'Builds, one row per build (CDEvents build queued / started / finished), kept up to date at ingest. A build with no finished event stays running.';
COMMENT ON COLUMN api.builds.build_id IS 'The build: CDEvents subject.id.';
COMMENT ON COLUMN api.builds.source IS 'Where the build lives: subject.source, else the context.source of its events. (build_id, source) identifies a row.';
COMMENT ON COLUMN api.builds.time IS 'When the build''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.builds.status IS 'queued, running or finished: the most advanced predicate seen, whatever the arrival order.';
COMMENT ON COLUMN api.builds.queued_at IS 'Time of the queued event; null when none arrived.';
COMMENT ON COLUMN api.builds.started_at IS 'Time of the started event; null when none arrived.';
COMMENT ON COLUMN api.builds.finished_at IS 'Time of the finished event; null while unfinished.';
COMMENT ON COLUMN api.builds.duration_s IS 'Build time in seconds: finished_at - started_at; null unless both are known.';
COMMENT ON COLUMN api.builds.queue_s IS 'Time spent queued in seconds: started_at - queued_at; null unless both are known.';
COMMENT ON COLUMN api.builds.artifact_id IS 'The artifact the build produced (content.artifactId, a purl); joins api.artifacts.artifact_id.';
COMMENT ON COLUMN api.builds.last_event_at IS 'Time of the build''s latest event.';
COMMENT ON COLUMN api.builds.events IS 'Number of distinct events of this build (replays are not counted).';
COMMENT ON COLUMN api.builds.last_payload IS 'The build''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.test_case_runs AS
SELECT s.subject_id AS run_id, s.subject_source AS source, s.first_time AS time,
       s.content->'testCase'->>'id' AS test_case_id, s.content->'testCase'->>'name' AS test_case_name,
       s.content->'testCase'->>'type' AS test_case_type,
       s.content->'testCase'->>'version' AS test_case_version,
       coalesce(s.content->'testCase'->>'uri', s.content->'testCase'->>'url') AS url,
       s.content->'testSuiteRun'->>'id' AS test_suite_run_id,
       s.content->'environment'->>'id' AS environment,
       s.status, s.content->>'outcome' AS outcome, s.content->>'reason' AS reason,
       s.content->>'severity' AS severity,
       (s.predicate_times->>'queued')::timestamptz AS queued_at,
       (s.predicate_times->>'started')::timestamptz AS started_at,
       (s.predicate_times->>'finished')::timestamptz AS finished_at,
       (s.predicate_times->>'skipped')::timestamptz AS skipped_at,
       extract(epoch FROM (s.predicate_times->>'finished')::timestamptz
                        - (s.predicate_times->>'started')::timestamptz)::double precision AS duration_s,
       extract(epoch FROM (s.predicate_times->>'started')::timestamptz
                        - (s.predicate_times->>'queued')::timestamptz)::double precision AS queue_s,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'testcaserun';

COMMENT ON VIEW api.test_case_runs IS 'Test case executions, one row per run (CDEvents 0.4+ testcaserun queued / started / finished / skipped, and CDEvents 0.3 testcase events, whose subject is the test case itself), kept up to date at ingest. A run with no finished or skipped event is not guessed to have ended.';
COMMENT ON COLUMN api.test_case_runs.run_id IS 'The test case run: CDEvents subject.id (for CDEvents 0.3 testcase events, the test case).';
COMMENT ON COLUMN api.test_case_runs.source IS 'Where the run lives: subject.source, else the context.source of its events. (run_id, source) identifies a row.';
COMMENT ON COLUMN api.test_case_runs.time IS 'When the run''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.test_case_runs.test_case_id IS 'The test case executed (content.testCase.id; for CDEvents 0.3 testcase events the subject id).';
COMMENT ON COLUMN api.test_case_runs.test_case_name IS 'Name of the test case (content.testCase.name).';
COMMENT ON COLUMN api.test_case_runs.test_case_type IS 'Kind of test: unit, integration, e2e, performance, security, ... (content.testCase.type).';
COMMENT ON COLUMN api.test_case_runs.test_case_version IS 'Version of the test case (content.testCase.version).';
COMMENT ON COLUMN api.test_case_runs.url IS 'Link to the test case (content.testCase.uri, or url).';
COMMENT ON COLUMN api.test_case_runs.test_suite_run_id IS 'The test suite run containing this run (content.testSuiteRun.id); joins api.test_suite_runs.run_id.';
COMMENT ON COLUMN api.test_case_runs.environment IS 'Environment the test ran in (content.environment.id, or the plain string given).';
COMMENT ON COLUMN api.test_case_runs.status IS 'queued, running, finished or skipped: the most advanced predicate seen (finished and skipped > started > queued), whatever the arrival order.';
COMMENT ON COLUMN api.test_case_runs.outcome IS 'Outcome of the finished event: success, failure, cancel or error (CDEvents 0.4 pass / fail read as success / failure); null until then.';
COMMENT ON COLUMN api.test_case_runs.reason IS 'Why it ended so, or why it was skipped (content.reason).';
COMMENT ON COLUMN api.test_case_runs.severity IS 'Severity of a failure: low, medium, high or critical (content.severity).';
COMMENT ON COLUMN api.test_case_runs.queued_at IS 'Time of the queued event; null when none arrived.';
COMMENT ON COLUMN api.test_case_runs.started_at IS 'Time of the started event; null when none arrived.';
COMMENT ON COLUMN api.test_case_runs.finished_at IS 'Time of the finished event; null while unfinished.';
COMMENT ON COLUMN api.test_case_runs.skipped_at IS 'Time of the skipped event; null when not skipped.';
COMMENT ON COLUMN api.test_case_runs.duration_s IS 'Run time in seconds: finished_at - started_at; null unless both are known.';
COMMENT ON COLUMN api.test_case_runs.queue_s IS 'Time spent queued in seconds: started_at - queued_at; null unless both are known.';
COMMENT ON COLUMN api.test_case_runs.last_event_at IS 'Time of the run''s latest event.';
COMMENT ON COLUMN api.test_case_runs.events IS 'Number of distinct events of this run (replays are not counted).';
COMMENT ON COLUMN api.test_case_runs.last_payload IS 'The run''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.test_suite_runs AS
SELECT s.subject_id AS run_id, s.subject_source AS source, s.first_time AS time,
       s.content->'testSuite'->>'id' AS test_suite_id, s.content->'testSuite'->>'name' AS test_suite_name,
       s.content->'testSuite'->>'version' AS test_suite_version,
       coalesce(s.content->'testSuite'->>'uri', s.content->'testSuite'->>'url') AS url,
       s.content->'environment'->>'id' AS environment,
       s.status, s.content->>'outcome' AS outcome, s.content->>'reason' AS reason,
       s.content->>'severity' AS severity,
       (s.predicate_times->>'queued')::timestamptz AS queued_at,
       (s.predicate_times->>'started')::timestamptz AS started_at,
       (s.predicate_times->>'finished')::timestamptz AS finished_at,
       extract(epoch FROM (s.predicate_times->>'finished')::timestamptz
                        - (s.predicate_times->>'started')::timestamptz)::double precision AS duration_s,
       extract(epoch FROM (s.predicate_times->>'started')::timestamptz
                        - (s.predicate_times->>'queued')::timestamptz)::double precision AS queue_s,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'testsuiterun';

COMMENT ON VIEW api.test_suite_runs IS 'Test suite executions, one row per run (CDEvents 0.4+ testsuiterun queued / started / finished, and CDEvents 0.3 testsuite events, whose subject is the suite itself), kept up to date at ingest. A run with no finished event stays running.';
COMMENT ON COLUMN api.test_suite_runs.run_id IS 'The test suite run: CDEvents subject.id (for CDEvents 0.3 testsuite events, the suite).';
COMMENT ON COLUMN api.test_suite_runs.source IS 'Where the run lives: subject.source, else the context.source of its events. (run_id, source) identifies a row.';
COMMENT ON COLUMN api.test_suite_runs.time IS 'When the run''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.test_suite_runs.test_suite_id IS 'The test suite executed (content.testSuite.id; for CDEvents 0.3 testsuite events the subject id).';
COMMENT ON COLUMN api.test_suite_runs.test_suite_name IS 'Name of the test suite (content.testSuite.name).';
COMMENT ON COLUMN api.test_suite_runs.test_suite_version IS 'Version of the test suite (content.testSuite.version).';
COMMENT ON COLUMN api.test_suite_runs.url IS 'Link to the test suite (content.testSuite.uri, or url as in CDEvents 0.4 queued events).';
COMMENT ON COLUMN api.test_suite_runs.environment IS 'Environment the suite ran in (content.environment.id, or the plain string given).';
COMMENT ON COLUMN api.test_suite_runs.status IS 'queued, running or finished: the most advanced predicate seen, whatever the arrival order.';
COMMENT ON COLUMN api.test_suite_runs.outcome IS 'Outcome of the finished event: success, failure, cancel or error (CDEvents 0.4 pass / fail read as success / failure); null until then.';
COMMENT ON COLUMN api.test_suite_runs.reason IS 'Why it ended so (content.reason).';
COMMENT ON COLUMN api.test_suite_runs.severity IS 'Severity of a failure: low, medium, high or critical (content.severity).';
COMMENT ON COLUMN api.test_suite_runs.queued_at IS 'Time of the queued event; null when none arrived.';
COMMENT ON COLUMN api.test_suite_runs.started_at IS 'Time of the started event; null when none arrived.';
COMMENT ON COLUMN api.test_suite_runs.finished_at IS 'Time of the finished event; null while unfinished.';
COMMENT ON COLUMN api.test_suite_runs.duration_s IS 'Run time in seconds: finished_at - started_at; null unless both are known.';
COMMENT ON COLUMN api.test_suite_runs.queue_s IS 'Time spent queued in seconds: started_at - queued_at; null unless both are known.';
COMMENT ON COLUMN api.test_suite_runs.last_event_at IS 'Time of the run''s latest event.';
COMMENT ON COLUMN api.test_suite_runs.events IS 'Number of distinct events of this run (replays are not counted).';
COMMENT ON COLUMN api.test_suite_runs.last_payload IS 'The run''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.artifacts AS
SELECT s.subject_id AS artifact_id, s.subject_source AS source, s.first_time AS time, s.status,
       (s.predicate_times->>'packaged')::timestamptz AS packaged_at,
       (s.predicate_times->>'signed')::timestamptz AS signed_at,
       (s.predicate_times->>'published')::timestamptz AS published_at,
       (s.predicate_times->>'downloaded')::timestamptz AS downloaded_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       s.content->'change'->>'id' AS change_id, s.content->'change'->>'source' AS change_source,
       s.content->'sbom'->>'uri' AS sbom_uri, s.content->>'signature' AS signature,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'artifact';

COMMENT ON VIEW api.artifacts IS 'Artifacts (packages, images), one row per artifact (CDEvents artifact packaged / signed / published / downloaded / deleted), kept up to date at ingest. DORA lead time starts from the change an artifact was packaged from.';
COMMENT ON COLUMN api.artifacts.artifact_id IS 'The artifact: CDEvents subject.id, usually a purl (pkg:oci/app@sha256:...).';
COMMENT ON COLUMN api.artifacts.source IS 'Where the artifact lives: subject.source, else the context.source of its events. (artifact_id, source) identifies a row.';
COMMENT ON COLUMN api.artifacts.time IS 'When the artifact''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.artifacts.status IS 'packaged, signed, published or deleted: the most advanced predicate seen (deleted > published = downloaded > signed > packaged), whatever the arrival order.';
COMMENT ON COLUMN api.artifacts.packaged_at IS 'Time of the packaged event; null when none arrived.';
COMMENT ON COLUMN api.artifacts.signed_at IS 'Time of the signed event; null when none arrived.';
COMMENT ON COLUMN api.artifacts.published_at IS 'Time of the published event; null when none arrived.';
COMMENT ON COLUMN api.artifacts.downloaded_at IS 'Time of the latest downloaded event; null when none arrived.';
COMMENT ON COLUMN api.artifacts.deleted_at IS 'Time of the deleted event; null while not deleted.';
COMMENT ON COLUMN api.artifacts.change_id IS 'The source change the artifact was packaged from (content.change.id of the packaged event); joins api.changes.change_id.';
COMMENT ON COLUMN api.artifacts.change_source IS 'Source of that change (content.change.source); joins api.changes.source.';
COMMENT ON COLUMN api.artifacts.sbom_uri IS 'Link to the artifact''s software bill of materials (content.sbom.uri).';
COMMENT ON COLUMN api.artifacts.signature IS 'The artifact''s signature (content.signature of the signed event).';
COMMENT ON COLUMN api.artifacts.last_event_at IS 'Time of the artifact''s latest event.';
COMMENT ON COLUMN api.artifacts.events IS 'Number of distinct events of this artifact (replays are not counted).';
COMMENT ON COLUMN api.artifacts.last_payload IS 'The artifact''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.changes AS
SELECT s.subject_id AS change_id, s.subject_source AS source, s.first_time AS time,
       s.content->'repository'->>'id' AS repository, s.status,
       s.content->>'description' AS description,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'updated')::timestamptz AS updated_at,
       (s.predicate_times->>'reviewed')::timestamptz AS reviewed_at,
       (s.predicate_times->>'merged')::timestamptz AS merged_at,
       (s.predicate_times->>'abandoned')::timestamptz AS abandoned_at,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'change';

COMMENT ON VIEW api.changes IS 'Source changes (pull / merge requests), one row per change (CDEvents change created / updated / reviewed / merged / abandoned), kept up to date at ingest.';
COMMENT ON COLUMN api.changes.change_id IS 'The change: CDEvents subject.id.';
COMMENT ON COLUMN api.changes.source IS 'Where the change lives: subject.source, else the context.source of its events. (change_id, source) identifies a row.';
COMMENT ON COLUMN api.changes.time IS 'When the change''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.changes.repository IS 'Repository of the change (content.repository.id, or the plain string given); joins api.repositories.repository_id.';
COMMENT ON COLUMN api.changes.status IS 'open, merged or abandoned: merged / abandoned once such an event is seen (the later one if both), open before.';
COMMENT ON COLUMN api.changes.description IS 'Description of the change (content.description).';
COMMENT ON COLUMN api.changes.created_at IS 'Time of the created event; null when none arrived.';
COMMENT ON COLUMN api.changes.updated_at IS 'Time of the latest updated event; null when none arrived.';
COMMENT ON COLUMN api.changes.reviewed_at IS 'Time of the latest reviewed event; null when none arrived.';
COMMENT ON COLUMN api.changes.merged_at IS 'Time of the merged event; null while not merged. DORA lead time starts here.';
COMMENT ON COLUMN api.changes.abandoned_at IS 'Time of the abandoned event; null when not abandoned.';
COMMENT ON COLUMN api.changes.last_event_at IS 'Time of the change''s latest event.';
COMMENT ON COLUMN api.changes.events IS 'Number of distinct events of this change (replays are not counted).';
COMMENT ON COLUMN api.changes.last_payload IS 'The change''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.branches AS
SELECT s.subject_id AS branch_id, s.subject_source AS source, s.first_time AS time,
       s.content->'repository'->>'id' AS repository, s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'branch';

COMMENT ON VIEW api.branches IS 'Branches of source repositories, one row per branch (CDEvents branch created / deleted), kept up to date at ingest.';
COMMENT ON COLUMN api.branches.branch_id IS 'The branch: CDEvents subject.id.';
COMMENT ON COLUMN api.branches.source IS 'Where the branch lives: subject.source, else the context.source of its events. (branch_id, source) identifies a row.';
COMMENT ON COLUMN api.branches.time IS 'When the branch''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.branches.repository IS 'Repository of the branch (content.repository.id, or the plain string given).';
COMMENT ON COLUMN api.branches.status IS 'active, or deleted once a deleted event is seen (whatever the arrival order).';
COMMENT ON COLUMN api.branches.created_at IS 'Time of the created event; null when none arrived.';
COMMENT ON COLUMN api.branches.deleted_at IS 'Time of the deleted event; null while not deleted.';
COMMENT ON COLUMN api.branches.last_event_at IS 'Time of the branch''s latest event.';
COMMENT ON COLUMN api.branches.events IS 'Number of distinct events of this branch (replays are not counted).';
COMMENT ON COLUMN api.branches.last_payload IS 'The branch''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.repositories AS
SELECT s.subject_id AS repository_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'name' AS name, s.content->>'owner' AS owner,
       coalesce(s.content->>'uri', s.content->>'url') AS url, s.content->>'viewUrl' AS view_url,
       s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'modified')::timestamptz AS modified_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'repository';

COMMENT ON VIEW api.repositories IS 'Source repositories, one row per repository (CDEvents repository created / modified / deleted), kept up to date at ingest.';
COMMENT ON COLUMN api.repositories.repository_id IS 'The repository: CDEvents subject.id.';
COMMENT ON COLUMN api.repositories.source IS 'Where the repository lives: subject.source, else the context.source of its events. (repository_id, source) identifies a row.';
COMMENT ON COLUMN api.repositories.time IS 'When the repository''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.repositories.name IS 'Name of the repository (content.name).';
COMMENT ON COLUMN api.repositories.owner IS 'Owner of the repository (content.owner).';
COMMENT ON COLUMN api.repositories.url IS 'URL to clone or reach the repository (content.uri of CDEvents 0.5, content.url of 0.3 / 0.4).';
COMMENT ON COLUMN api.repositories.view_url IS 'URL to browse the repository (content.viewUrl).';
COMMENT ON COLUMN api.repositories.status IS 'active, or deleted once a deleted event is seen (whatever the arrival order).';
COMMENT ON COLUMN api.repositories.created_at IS 'Time of the created event; null when none arrived.';
COMMENT ON COLUMN api.repositories.modified_at IS 'Time of the latest modified event; null when none arrived.';
COMMENT ON COLUMN api.repositories.deleted_at IS 'Time of the deleted event; null while not deleted.';
COMMENT ON COLUMN api.repositories.last_event_at IS 'Time of the repository''s latest event.';
COMMENT ON COLUMN api.repositories.events IS 'Number of distinct events of this repository (replays are not counted).';
COMMENT ON COLUMN api.repositories.last_payload IS 'The repository''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.environments AS
SELECT s.subject_id AS environment_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'name' AS name, coalesce(s.content->>'uri', s.content->>'url') AS url,
       s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'modified')::timestamptz AS modified_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'environment';

COMMENT ON VIEW api.environments IS 'Deployment environments, one row per environment (CDEvents environment created / modified / deleted), kept up to date at ingest.';
COMMENT ON COLUMN api.environments.environment_id IS 'The environment: CDEvents subject.id (what service events name in content.environment).';
COMMENT ON COLUMN api.environments.source IS 'Where the environment lives: subject.source, else the context.source of its events. (environment_id, source) identifies a row.';
COMMENT ON COLUMN api.environments.time IS 'When the environment''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.environments.name IS 'Name of the environment (content.name).';
COMMENT ON COLUMN api.environments.url IS 'URL of the environment (content.uri of CDEvents 0.5, content.url of 0.3 / 0.4).';
COMMENT ON COLUMN api.environments.status IS 'active, or deleted once a deleted event is seen (whatever the arrival order).';
COMMENT ON COLUMN api.environments.created_at IS 'Time of the created event; null when none arrived.';
COMMENT ON COLUMN api.environments.modified_at IS 'Time of the latest modified event; null when none arrived.';
COMMENT ON COLUMN api.environments.deleted_at IS 'Time of the deleted event; null while not deleted.';
COMMENT ON COLUMN api.environments.last_event_at IS 'Time of the environment''s latest event.';
COMMENT ON COLUMN api.environments.events IS 'Number of distinct events of this environment (replays are not counted).';
COMMENT ON COLUMN api.environments.last_payload IS 'The environment''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.incidents AS
SELECT s.subject_id AS incident_id, s.subject_source AS source, s.first_time AS time,
       s.content->'environment'->>'id' AS environment, s.content->'service'->>'id' AS service,
       s.content->>'artifactId' AS artifact_id, s.content->>'description' AS description,
       s.content->>'ticketURI' AS ticket_url, s.status,
       (s.predicate_times->>'detected')::timestamptz AS detected_at,
       (s.predicate_times->>'reported')::timestamptz AS reported_at,
       (s.predicate_times->>'resolved')::timestamptz AS resolved_at,
       extract(epoch FROM (s.predicate_times->>'resolved')::timestamptz
           - least((s.predicate_times->>'detected')::timestamptz,
                   (s.predicate_times->>'reported')::timestamptz))::double precision
           AS time_to_restore_s,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'incident';

COMMENT ON VIEW api.incidents IS 'Incidents in running services, one row per incident (CDEvents incident detected / reported / resolved), kept up to date at ingest. An incident without a resolved event stays open. These rows feed DORA change failure rate and time to restore.';
COMMENT ON COLUMN api.incidents.incident_id IS 'The incident: CDEvents subject.id.';
COMMENT ON COLUMN api.incidents.source IS 'Who reported it: subject.source, else the context.source of its events. (incident_id, source) identifies a row.';
COMMENT ON COLUMN api.incidents.time IS 'When the incident began: the time of its earliest event (normally detected or reported). Indexed: filter on it.';
COMMENT ON COLUMN api.incidents.environment IS 'Environment affected (content.environment.id, or the plain string given).';
COMMENT ON COLUMN api.incidents.service IS 'Service affected (content.service.id, or the plain string given); matches api.deployments.service.';
COMMENT ON COLUMN api.incidents.artifact_id IS 'Artifact running when the incident happened (content.artifactId of the newest event that has one).';
COMMENT ON COLUMN api.incidents.description IS 'Description of the newest event that has one (the resolved event may say how it was restored).';
COMMENT ON COLUMN api.incidents.ticket_url IS 'Link to the ticket tracking the incident (content.ticketURI of the reported event).';
COMMENT ON COLUMN api.incidents.status IS 'open (detected or reported) or resolved, whatever the arrival order.';
COMMENT ON COLUMN api.incidents.detected_at IS 'Time of the detected event; null when none arrived.';
COMMENT ON COLUMN api.incidents.reported_at IS 'Time of the reported event; null when none arrived.';
COMMENT ON COLUMN api.incidents.resolved_at IS 'Time of the resolved event; null while open.';
COMMENT ON COLUMN api.incidents.time_to_restore_s IS 'Seconds from the first of detected_at and reported_at to resolved_at; null while open or when neither detected nor reported arrived.';
COMMENT ON COLUMN api.incidents.last_event_at IS 'Time of the incident''s latest event.';
COMMENT ON COLUMN api.incidents.events IS 'Number of distinct events of this incident (replays are not counted).';
COMMENT ON COLUMN api.incidents.last_payload IS 'The incident''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.tickets AS
SELECT s.subject_id AS ticket_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'summary' AS summary, s.content->>'ticketType' AS ticket_type,
       s.content->>'priority' AS priority, s.content->>'group' AS group_name,
       s.content->>'creator' AS creator,
       CASE WHEN jsonb_typeof(s.content->'assignees') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(s.content->'assignees')) END AS assignees,
       CASE WHEN jsonb_typeof(s.content->'labels') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(s.content->'labels')) END AS labels,
       s.content->>'milestone' AS milestone, s.content->>'resolution' AS resolution,
       s.content->>'updatedBy' AS updated_by, s.content->>'uri' AS url, s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'updated')::timestamptz AS updated_at,
       (s.predicate_times->>'closed')::timestamptz AS closed_at,
       s.last_time AS last_event_at, s.events, s.last_payload
FROM collector.subject_rows s WHERE s.subject_type = 'ticket';

COMMENT ON VIEW api.tickets IS 'Tickets of issue trackers, one row per ticket (CDEvents ticket created / updated / closed), kept up to date at ingest. Fields hold the newest value sent.';
COMMENT ON COLUMN api.tickets.ticket_id IS 'The ticket: CDEvents subject.id.';
COMMENT ON COLUMN api.tickets.source IS 'The tracker: subject.source, else the context.source of its events. (ticket_id, source) identifies a row.';
COMMENT ON COLUMN api.tickets.time IS 'When the ticket''s lifecycle began: the time of its earliest event. Indexed: filter on it.';
COMMENT ON COLUMN api.tickets.summary IS 'Summary of the ticket (content.summary).';
COMMENT ON COLUMN api.tickets.ticket_type IS 'Type of ticket: task, bug, feature, ... (content.ticketType).';
COMMENT ON COLUMN api.tickets.priority IS 'Priority: low, medium, high, ... (content.priority).';
COMMENT ON COLUMN api.tickets.group_name IS 'Group the ticket is assigned to (content.group).';
COMMENT ON COLUMN api.tickets.creator IS 'Who created the ticket (content.creator).';
COMMENT ON COLUMN api.tickets.assignees IS 'Who the ticket is assigned to (content.assignees).';
COMMENT ON COLUMN api.tickets.labels IS 'Labels of the ticket (content.labels).';
COMMENT ON COLUMN api.tickets.milestone IS 'Milestone of the ticket (content.milestone).';
COMMENT ON COLUMN api.tickets.resolution IS 'How it was closed: completed, withdrawn, declined, ... (content.resolution of the closed event).';
COMMENT ON COLUMN api.tickets.updated_by IS 'Who last updated or closed the ticket (content.updatedBy).';
COMMENT ON COLUMN api.tickets.url IS 'Link to the ticket (content.uri).';
COMMENT ON COLUMN api.tickets.status IS 'open, or closed once a closed event is seen (whatever the arrival order).';
COMMENT ON COLUMN api.tickets.created_at IS 'Time of the created event; null when none arrived.';
COMMENT ON COLUMN api.tickets.updated_at IS 'Time of the latest updated event; null when none arrived.';
COMMENT ON COLUMN api.tickets.closed_at IS 'Time of the closed event; null while open.';
COMMENT ON COLUMN api.tickets.last_event_at IS 'Time of the ticket''s latest event.';
COMMENT ON COLUMN api.tickets.events IS 'Number of distinct events of this ticket (replays are not counted).';
COMMENT ON COLUMN api.tickets.last_payload IS 'The ticket''s latest event as sent; null once retention has dropped that event.';

CREATE VIEW api.deployments AS
SELECT d.time, d.environment, d.service, d.artifact_id, d.action,
       d.event_id, d.event_source, d.event_type
FROM collector.deployments d;

COMMENT ON VIEW api.deployments IS 'Every deployment-like service event, one row each: CDEvents service deployed, upgraded, rolledback and removed. DORA counts deployed and upgraded as deployments; rolledback marks the deployment before it as failed.';
COMMENT ON COLUMN api.deployments.time IS 'When it happened (the event''s timestamp). Indexed: filter on it.';
COMMENT ON COLUMN api.deployments.environment IS 'Environment deployed to (content.environment.id, or the plain string given); null when the event names none (DORA then counts the deployment but cannot link a rollback or incident to it).';
COMMENT ON COLUMN api.deployments.service IS 'The service: CDEvents subject.id of the service event.';
COMMENT ON COLUMN api.deployments.artifact_id IS 'Artifact deployed, upgraded to or rolled back to (content.artifactId); null for removed.';
COMMENT ON COLUMN api.deployments.action IS 'deployed, upgraded, rolledback or removed: the event''s predicate.';
COMMENT ON COLUMN api.deployments.event_id IS 'Id of the event (context.id); with event_source and event_type it finds the event in api.events.';
COMMENT ON COLUMN api.deployments.event_source IS 'Source of the event (context.source).';
COMMENT ON COLUMN api.deployments.event_type IS 'Type of the event, e.g. dev.cdevents.service.deployed.0.2.0.';

CREATE VIEW api.service_state AS
SELECT s.environment, s.service, s.artifact_id,
       CASE WHEN s.last_action = 'removed' THEN 'removed' ELSE 'running' END AS state,
       s.last_action, s.since
FROM collector.service_state s;

COMMENT ON VIEW api.service_state IS 'What runs where now: one row per environment and service, from its latest deployment-like event by event time (an older event arriving late changes nothing).';
COMMENT ON COLUMN api.service_state.environment IS 'The environment (service events without one are not tracked here).';
COMMENT ON COLUMN api.service_state.service IS 'The service: CDEvents subject.id of its service events.';
COMMENT ON COLUMN api.service_state.artifact_id IS 'Artifact running there since `since` (deployed, upgraded or rolled back to); null once removed.';
COMMENT ON COLUMN api.service_state.state IS 'running, or removed when the latest event is a removed event.';
COMMENT ON COLUMN api.service_state.last_action IS 'The latest event''s predicate: deployed, upgraded, rolledback or removed.';
COMMENT ON COLUMN api.service_state.since IS 'Time of the latest event.';

-- DORA ---------------------------------------------------------------------------------------
-- Private building blocks (called by the SECURITY DEFINER functions of `api`), then the
-- functions of `api`: each takes a time range [from_time, to_time) and optional environment and
-- service arrays (NULL or empty: all), as a single value with a rating or as a series. They are
-- plpgsql with plan_cache_mode = force_custom_plan so that their query is planned, each call,
-- for the range asked (the building blocks are inlined into it): an SQL function is planned
-- with its arguments unknown, and a range's default estimate (a handful of rows) made the
-- planner rerun whole subqueries once per deployment.

-- Refuses a range (and bucket) that cannot give a meaningful answer, naming the argument.
CREATE FUNCTION collector.dora_arguments(from_time timestamptz, to_time timestamptz,
                                         bucket interval DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    months numeric;
BEGIN
    IF from_time IS NULL OR to_time IS NULL THEN
        RAISE EXCEPTION 'from_time and to_time are required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_time <= from_time THEN
        RAISE EXCEPTION 'to_time (%) must be after from_time (%)', to_time, from_time
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF bucket IS NOT NULL THEN
        months := extract(year FROM bucket) * 12 + extract(month FROM bucket);
        IF months < 0 OR (months = 0 AND bucket <= interval '0')
           OR (months > 0 AND bucket - make_interval(months => months::integer) <> interval '0') THEN
            RAISE EXCEPTION 'bucket %: use a positive interval of days, hours, ... (e.g. ''1 day'') or of whole months (e.g. ''1 month''), not both', bucket
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    RETURN true;
END
$$;

-- The start of the bucket holding `t`. Buckets are aligned in UTC: to 2001-01-01T00:00Z (a
-- Monday) for days and shorter (so days start at midnight UTC and weeks on Monday), and to
-- January 2001 for months (so '3 months' are calendar quarters, '1 year' calendar years).
CREATE FUNCTION collector.bucket_of(t timestamptz, bucket interval) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN extract(year FROM bucket) * 12 + extract(month FROM bucket) = 0
        THEN date_bin(bucket, t, timestamptz '2001-01-01 00:00:00+00')
        ELSE (timestamp '2001-01-01' + make_interval(months => (
                  floor(((extract(year FROM t AT TIME ZONE 'UTC') - 2001) * 12
                         + extract(month FROM t AT TIME ZONE 'UTC') - 1)
                        / (extract(year FROM bucket) * 12 + extract(month FROM bucket)))
                  * (extract(year FROM bucket) * 12 + extract(month FROM bucket)))::integer))
             AT TIME ZONE 'UTC'
    END
$$;

-- Every bucket start from the bucket holding from_time up to before to_time, stepped in UTC
-- (so a day is 24 hours whatever the session's time zone).
CREATE FUNCTION collector.buckets(from_time timestamptz, to_time timestamptz, bucket interval)
RETURNS TABLE (bucket_start timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT g AT TIME ZONE 'UTC'
    FROM generate_series(collector.bucket_of(from_time, bucket) AT TIME ZONE 'UTC',
                         to_time AT TIME ZONE 'UTC' - interval '1 microsecond', bucket) AS g
$$;

-- The deployments the four metrics count: service deployed or upgraded events in the range.
CREATE FUNCTION collector.dora_deployments(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS SETOF collector.deployments
LANGUAGE sql STABLE AS $$
    SELECT * FROM collector.deployments d
    WHERE d.time >= from_time AND d.time < to_time
      AND d.action IN ('deployed', 'upgraded')
      AND (coalesce(cardinality(environments), 0) = 0 OR d.environment = ANY (environments))
      AND (coalesce(cardinality(services), 0) = 0 OR d.service = ANY (services))
$$;

-- Lead time of each deployment: from the merge of the change its artifact was packaged from
-- (the artifact's `change` reference: id, and source when given), else from the artifact's
-- publication, else from its packaging, to the deployment. Null when the artifact is unknown.
-- Each artifact is looked up once, however often it was deployed (dev, staging, production).
CREATE FUNCTION collector.dora_lead_times(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, lead_time_s double precision)
LANGUAGE sql STABLE AS $$
    WITH deployed AS MATERIALIZED (
        SELECT d.time, d.artifact_id
        FROM collector.dora_deployments(from_time, to_time, environments, services) d
    ), started AS MATERIALIZED (
        SELECT k.artifact_id, coalesce(c.merged_at, a.published_at, a.packaged_at) AS since
        FROM (SELECT DISTINCT artifact_id FROM deployed WHERE artifact_id IS NOT NULL) AS k
        CROSS JOIN LATERAL (
            SELECT (a.predicate_times->>'published')::timestamptz AS published_at,
                   (a.predicate_times->>'packaged')::timestamptz AS packaged_at,
                   a.content->'change'->>'id' AS change_id,
                   a.content->'change'->>'source' AS change_source
            FROM collector.subjects a
            WHERE a.subject_type = 'artifact' AND a.subject_id = k.artifact_id
            ORDER BY a.first_time LIMIT 1
        ) a
        LEFT JOIN LATERAL (
            SELECT (c.predicate_times->>'merged')::timestamptz AS merged_at
            FROM collector.subjects c
            WHERE c.subject_type = 'change' AND c.subject_id = a.change_id
              AND (a.change_source IS NULL OR c.subject_source = a.change_source)
            ORDER BY c.first_time LIMIT 1
        ) c ON true
    )
    SELECT d.time, extract(epoch FROM d.time - s.since)::double precision
    FROM deployed d LEFT JOIN started s ON s.artifact_id = d.artifact_id
$$;

-- Whether each deployment failed: before the next deployment of the same service to the same
-- environment, that service was rolled back there, or an incident was detected or reported
-- for it there (the incident's first event falls after the deployment, up to the next one).
-- Set-based, without a probe per deployment: the deployments of the range and the failures
-- that can belong to them (from the range's start up to the first deployment after it) in one
-- timeline per service and environment, where each failure goes to the latest deployment
-- strictly before it.
CREATE FUNCTION collector.dora_failures(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, failed boolean)
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
        SELECT t.is_deployment,
               max(t.time) FILTER (WHERE t.is_deployment) OVER (
                   PARTITION BY t.environment, t.service ORDER BY t.time, t.is_deployment
                   ROWS UNBOUNDED PRECEDING) AS deployed_at,
               t.environment, t.service
        FROM (SELECT environment, service, time, true AS is_deployment FROM deployed
              WHERE environment IS NOT NULL
              UNION ALL
              SELECT environment, service, time, false FROM failures) AS t
    ), failed AS MATERIALIZED (
        SELECT DISTINCT environment, service, deployed_at FROM timeline
        WHERE NOT is_deployment AND deployed_at IS NOT NULL
    )
    SELECT d.time, f.deployed_at IS NOT NULL
    FROM deployed d
    LEFT JOIN failed f
      ON f.environment = d.environment AND f.service = d.service AND f.deployed_at = d.time
$$;

-- Time to restore of each incident that began in the range (its first event in the range):
-- from detected (or reported, whichever came first) to resolved; null while unresolved.
CREATE FUNCTION collector.dora_restores(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, restore_s double precision)
LANGUAGE sql STABLE AS $$
    SELECT i.first_time,
           extract(epoch FROM (i.predicate_times->>'resolved')::timestamptz
               - least((i.predicate_times->>'detected')::timestamptz,
                       (i.predicate_times->>'reported')::timestamptz))::double precision
    FROM collector.subjects i
    WHERE i.subject_type = 'incident' AND i.first_time >= from_time AND i.first_time < to_time
      AND (coalesce(cardinality(environments), 0) = 0
           OR i.content->'environment'->>'id' = ANY (environments))
      AND (coalesce(cardinality(services), 0) = 0 OR i.content->'service'->>'id' = ANY (services))
$$;

CREATE FUNCTION api.dora_deployment_frequency(
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
               CASE WHEN n / span / greatest(k, 1) >= 1 THEN 'elite'
                    WHEN n / span / greatest(k, 1) >= 1.0 / 7 THEN 'high'
                    WHEN n / span / greatest(k, 1) >= 1.0 / 30 THEN 'medium' ELSE 'low' END
        FROM (SELECT count(*) AS n, count(DISTINCT d.service) AS k,
                     (extract(epoch FROM to_time - from_time) / 86400)::double precision AS span
              FROM collector.dora_deployments(from_time, to_time, environments, services) d
              WHERE collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

COMMENT ON FUNCTION api.dora_deployment_frequency(timestamptz, timestamptz, text[], text[]) IS 'DORA deployment frequency over [from_time, to_time). A deployment is a CDEvents service deployed or upgraded event (rolledback and removed are not), in the given environments and services (NULL or empty array: all; filter on your production environments). Returns deployments (count), services_deployed (distinct services among them), days (length of the range), per_day = deployments / days, per_service_per_day = per_day / services_deployed, and rating, from per_service_per_day so that many services do not add up to a better rating: elite >= 1 a day, high >= 1 a week, medium >= 1 a month (30 days), low below (and when nothing was deployed).';

CREATE FUNCTION api.dora_deployment_frequency_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, deployments bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    -- Checked first: a bad bucket must be named, not fail inside date_bin.
    PERFORM collector.dora_arguments(from_time, to_time, coalesce(bucket, interval '0'));
    RETURN QUERY
        SELECT b.bucket_start, coalesce(x.n, 0)
        FROM collector.buckets(from_time, to_time, bucket) b
        LEFT JOIN (SELECT collector.bucket_of(d.time, bucket) AS bucket_start, count(*) AS n
                   FROM collector.dora_deployments(from_time, to_time, environments, services) d
                   GROUP BY 1) x USING (bucket_start)
        ORDER BY b.bucket_start;
END
$$;

COMMENT ON FUNCTION api.dora_deployment_frequency_series(timestamptz, timestamptz, interval, text[], text[]) IS 'DORA deployment frequency as a time series: one row per bucket (empty buckets included, with 0), deployments = count of service deployed or upgraded events in the bucket and in [from_time, to_time), in the given environments and services (NULL or empty: all). time is the bucket start; buckets are aligned in UTC (days at midnight UTC, weeks on Monday, months on the 1st; ''3 months'' are quarters), so the first and last bucket may be partly outside the range. bucket is a positive interval of days / hours / ... or of whole months, not both.';

CREATE FUNCTION api.dora_lead_time(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, median_s double precision, p90_s double precision,
                 mean_s double precision, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT n, m, p, a,
               CASE WHEN m IS NULL THEN NULL WHEN m < 86400 THEN 'elite' WHEN m < 7 * 86400 THEN 'high'
                    WHEN m < 30 * 86400 THEN 'medium' ELSE 'low' END
        FROM (SELECT count(*) AS n,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY l.lead_time_s) AS m,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY l.lead_time_s) AS p,
                     avg(l.lead_time_s) AS a
              FROM collector.dora_lead_times(from_time, to_time, environments, services) l
              WHERE l.lead_time_s IS NOT NULL AND collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

COMMENT ON FUNCTION api.dora_lead_time(timestamptz, timestamptz, text[], text[]) IS 'DORA lead time for changes, for the deployments (service deployed or upgraded events) in [from_time, to_time) in the given environments and services (NULL or empty: all). The lead time of a deployment runs from the merge of the change its artifact was built from (the change referenced by the artifact''s packaged event: content.change id, and source when given) — else, without a known merge, from the artifact''s published event, else its packaged event — to the deployment, in seconds. Deployments whose artifact has no such event are left out. Returns deployments (how many have a lead time), median_s, p90_s, mean_s and rating from the median: elite < 1 day, high < 1 week, medium < 30 days, low otherwise; all null when no deployment has a lead time.';

CREATE FUNCTION api.dora_lead_time_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, deployments bigint, median_s double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    -- Checked first: a bad bucket must be named, not fail inside date_bin.
    PERFORM collector.dora_arguments(from_time, to_time, coalesce(bucket, interval '0'));
    RETURN QUERY
        SELECT b.bucket_start, coalesce(x.n, 0), x.m
        FROM collector.buckets(from_time, to_time, bucket) b
        LEFT JOIN (SELECT collector.bucket_of(l.time, bucket) AS bucket_start, count(*) AS n,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY l.lead_time_s) AS m
                   FROM collector.dora_lead_times(from_time, to_time, environments, services) l
                   WHERE l.lead_time_s IS NOT NULL
                   GROUP BY 1) x USING (bucket_start)
        ORDER BY b.bucket_start;
END
$$;

COMMENT ON FUNCTION api.dora_lead_time_series(timestamptz, timestamptz, interval, text[], text[]) IS 'DORA lead time for changes as a time series: one row per bucket (empty buckets included: 0 deployments, null median), with the deployments having a lead time in that bucket and their median lead time in seconds; the lead time is defined as for api.dora_lead_time, buckets as for api.dora_deployment_frequency_series (aligned in UTC; bucket is an interval of days / hours / ... or of whole months).';

CREATE FUNCTION api.dora_change_failure_rate(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, failed bigint, rate double precision, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT n, f, r,
               CASE WHEN r IS NULL THEN NULL WHEN r <= 0.05 THEN 'elite' WHEN r <= 0.10 THEN 'high'
                    WHEN r <= 0.15 THEN 'medium' ELSE 'low' END
        FROM (SELECT count(*) AS n, count(*) FILTER (WHERE f.failed) AS f,
                     (count(*) FILTER (WHERE f.failed))::double precision / nullif(count(*), 0) AS r
              FROM collector.dora_failures(from_time, to_time, environments, services) f
              WHERE collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

COMMENT ON FUNCTION api.dora_change_failure_rate(timestamptz, timestamptz, text[], text[]) IS 'DORA change failure rate of the deployments (service deployed or upgraded events) in [from_time, to_time) in the given environments and services (NULL or empty: all). A deployment failed when, before the next deployment of the same service to the same environment (or at any later time if there is none yet), that service was rolled back there (a service rolledback event) or an incident was detected or reported for it there (an incident whose content.service and content.environment name them and whose first event falls after the deployment). Late events count whenever they arrive. Returns deployments, failed, rate = failed / deployments (null without deployments) and rating: elite <= 5 %, high <= 10 %, medium <= 15 %, low above.';

CREATE FUNCTION api.dora_change_failure_rate_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, deployments bigint, failed bigint, rate double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    -- Checked first: a bad bucket must be named, not fail inside date_bin.
    PERFORM collector.dora_arguments(from_time, to_time, coalesce(bucket, interval '0'));
    RETURN QUERY
        SELECT b.bucket_start, coalesce(x.n, 0), coalesce(x.f, 0), x.f::double precision / x.n
        FROM collector.buckets(from_time, to_time, bucket) b
        LEFT JOIN (SELECT collector.bucket_of(f.time, bucket) AS bucket_start, count(*) AS n,
                          count(*) FILTER (WHERE f.failed) AS f
                   FROM collector.dora_failures(from_time, to_time, environments, services) f
                   GROUP BY 1) x USING (bucket_start)
        ORDER BY b.bucket_start;
END
$$;

COMMENT ON FUNCTION api.dora_change_failure_rate_series(timestamptz, timestamptz, interval, text[], text[]) IS 'DORA change failure rate as a time series: one row per bucket (empty buckets included: 0 deployments, 0 failed, null rate) with the deployments made in that bucket, how many of them failed and the rate; failure is defined as for api.dora_change_failure_rate, buckets as for api.dora_deployment_frequency_series (aligned in UTC; bucket is an interval of days / hours / ... or of whole months).';

CREATE FUNCTION api.dora_time_to_restore(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (incidents bigint, resolved bigint, median_s double precision,
                 p90_s double precision, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT n, k, m, p,
               CASE WHEN m IS NULL THEN NULL WHEN m < 3600 THEN 'elite' WHEN m < 86400 THEN 'high'
                    WHEN m < 7 * 86400 THEN 'medium' ELSE 'low' END
        FROM (SELECT count(*) AS n, count(r.restore_s) AS k,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY r.restore_s) AS m,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY r.restore_s) AS p
              FROM collector.dora_restores(from_time, to_time, environments, services) r
              WHERE collector.dora_arguments(from_time, to_time)) AS x;
END
$$;

COMMENT ON FUNCTION api.dora_time_to_restore(timestamptz, timestamptz, text[], text[]) IS 'DORA time to restore service, for the incidents that began in [from_time, to_time) (their first event falls in the range) in the given environments and services (NULL or empty: all; matched on the incident''s content.environment and content.service). The time to restore of an incident runs from its detected event (or its reported event, whichever came first) to its resolved event, in seconds. Returns incidents (began in the range), resolved (how many have a time to restore; open ones do not), median_s, p90_s and rating from the median: elite < 1 hour, high < 1 day, medium < 1 week, low otherwise; null when none is resolved.';

CREATE FUNCTION api.dora_time_to_restore_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, incidents bigint, resolved bigint, median_s double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
    -- Checked first: a bad bucket must be named, not fail inside date_bin.
    PERFORM collector.dora_arguments(from_time, to_time, coalesce(bucket, interval '0'));
    RETURN QUERY
        SELECT b.bucket_start, coalesce(x.n, 0), coalesce(x.k, 0), x.m
        FROM collector.buckets(from_time, to_time, bucket) b
        LEFT JOIN (SELECT collector.bucket_of(r.time, bucket) AS bucket_start, count(*) AS n,
                          count(r.restore_s) AS k,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY r.restore_s) AS m
                   FROM collector.dora_restores(from_time, to_time, environments, services) r
                   GROUP BY 1) x USING (bucket_start)
        ORDER BY b.bucket_start;
END
$$;

COMMENT ON FUNCTION api.dora_time_to_restore_series(timestamptz, timestamptz, interval, text[], text[]) IS 'DORA time to restore as a time series: one row per bucket (empty buckets included: 0 incidents, null median) with the incidents that began in that bucket, how many of them are resolved and their median time to restore in seconds; defined as for api.dora_time_to_restore, buckets as for api.dora_deployment_frequency_series (aligned in UTC; bucket is an interval of days / hours / ... or of whole months).';

-- The contract ----------------------------------------------------------------------------

CREATE FUNCTION api.schema_version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '1.0' $$;

COMMENT ON FUNCTION api.schema_version() IS 'Version of the `api` schema, major.minor (e.g. 1.0). The objects of `api` are a contract: a minor version only adds objects or columns; a breaking change never alters an existing object but adds a new one (e.g. api.pipeline_runs_v2) and bumps the major version, the old one staying until announced removal.';

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA collector FROM PUBLIC;
GRANT EXECUTE ON FUNCTION collector.ingest TO collector_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO collector_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api TO collector_reader;
