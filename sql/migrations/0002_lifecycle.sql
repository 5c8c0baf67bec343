-- CDEvents lifecycle state, kept incrementally at ingest, and the delivery views and DORA
-- functions of `api` built on it.
--
-- A statement-level trigger on collector.events sees each ingested batch once (duplicates are
-- never inserted, so never counted twice) and folds it into one row per subject instance
-- (subject type, source, id). Dashboard queries then read state rows for their time range
-- instead of re-aggregating all events.

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
    predicate_times jsonb NOT NULL,         -- {"started": "<time>", ...}: latest time per predicate
    status          text NOT NULL,
    status_rank     smallint NOT NULL,
    status_time     timestamptz NOT NULL,
    content         jsonb NOT NULL,         -- subject.content of all events merged, newest wins
    last_payload    jsonb NOT NULL,         -- the latest event (by event time)
    last_predicate  text NOT NULL,
    events          integer NOT NULL,
    PRIMARY KEY (subject_type, subject_source, subject_id)
);
CREATE INDEX subjects_first_time ON collector.subjects (subject_type, first_time);
CREATE INDEX subjects_last_time ON collector.subjects (subject_type, last_time);
CREATE INDEX subjects_id ON collector.subjects (subject_type, subject_id);

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

CREATE AGGREGATE collector.jsonb_merge(jsonb) (SFUNC = jsonb_concat, STYPE = jsonb, INITCOND = '{}');

CREATE FUNCTION collector.track_lifecycle() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    WITH ev AS (
        SELECT l.tracked_as AS subject_type,
               coalesce(n.payload->'subject'->>'source', n.source) AS subject_source,
               n.subject AS subject_id, n.predicate, n.time, n.payload, l.rank, l.status,
               CASE WHEN jsonb_typeof(n.payload->'subject'->'content') = 'object'
                    THEN n.payload->'subject'->'content' ELSE '{}'::jsonb END AS content
        FROM new_events n
        JOIN collector.lifecycle_states l
          ON l.subject_type = n.subject_type AND l.predicate = n.predicate
        WHERE n.family = 'cdevents' AND n.subject IS NOT NULL
    ), batch AS (
        -- ON CONFLICT may touch a row once per statement: fold the batch per subject first.
        SELECT subject_type, subject_source, subject_id,
               min(time) AS first_time, max(time) AS last_time,
               jsonb_object_agg(predicate, time ORDER BY time) AS predicate_times,
               (array_agg(status ORDER BY rank DESC, time DESC))[1] AS status,
               max(rank) AS status_rank,
               (array_agg(time ORDER BY rank DESC, time DESC))[1] AS status_time,
               collector.jsonb_merge(content ORDER BY time) AS content,
               (array_agg(payload ORDER BY time DESC))[1] AS last_payload,
               (array_agg(predicate ORDER BY time DESC))[1] AS last_predicate,
               count(*)::integer AS events
        FROM ev
        GROUP BY subject_type, subject_source, subject_id
    )
    INSERT INTO collector.subjects AS s
        (subject_type, subject_source, subject_id, first_time, last_time, predicate_times,
         status, status_rank, status_time, content, last_payload, last_predicate, events)
    SELECT subject_type, subject_source, subject_id, first_time, last_time, predicate_times,
           status, status_rank, status_time, content, last_payload, last_predicate, events
    FROM batch
    ON CONFLICT (subject_type, subject_source, subject_id) DO UPDATE SET
        first_time = least(s.first_time, excluded.first_time),
        last_time = greatest(s.last_time, excluded.last_time),
        predicate_times = CASE WHEN excluded.last_time >= s.last_time
            THEN s.predicate_times || excluded.predicate_times
            ELSE excluded.predicate_times || s.predicate_times END,
        status = CASE WHEN (excluded.status_rank, excluded.status_time) >= (s.status_rank, s.status_time)
            THEN excluded.status ELSE s.status END,
        status_time = CASE WHEN (excluded.status_rank, excluded.status_time) >= (s.status_rank, s.status_time)
            THEN excluded.status_time ELSE s.status_time END,
        status_rank = greatest(s.status_rank, excluded.status_rank),
        content = CASE WHEN excluded.last_time >= s.last_time
            THEN s.content || excluded.content ELSE excluded.content || s.content END,
        last_payload = CASE WHEN excluded.last_time >= s.last_time
            THEN excluded.last_payload ELSE s.last_payload END,
        last_predicate = CASE WHEN excluded.last_time >= s.last_time
            THEN excluded.last_predicate ELSE s.last_predicate END,
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
    ORDER BY environment, service, time DESC, event_id DESC
    ON CONFLICT (environment, service) DO UPDATE SET
        artifact_id = excluded.artifact_id, last_action = excluded.last_action, since = excluded.since
    WHERE excluded.since >= s.since;

    RETURN NULL;
END
$$;

CREATE TRIGGER events_track_lifecycle AFTER INSERT ON collector.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION collector.track_lifecycle();

-- The delivery views -----------------------------------------------------------------------
-- Every view has `time` (when the lifecycle began, indexed: filter on it) and `updated_at`.

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
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'pipelinerun';

CREATE VIEW api.task_runs AS
SELECT s.subject_id AS run_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'taskName' AS task_name,
       collector.ref_id(s.content->'pipelineRun') AS pipeline_run_id,
       s.status, s.content->>'outcome' AS outcome,
       (s.predicate_times->>'started')::timestamptz AS started_at,
       (s.predicate_times->>'finished')::timestamptz AS finished_at,
       extract(epoch FROM (s.predicate_times->>'finished')::timestamptz
                        - (s.predicate_times->>'started')::timestamptz)::double precision AS duration_s,
       coalesce(s.content->>'uri', s.content->>'url') AS url, s.content->>'errors' AS errors,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'taskrun';

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
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'build';

CREATE VIEW api.test_case_runs AS
SELECT s.subject_id AS run_id, s.subject_source AS source, s.first_time AS time,
       s.content->'testCase'->>'id' AS test_case_id, s.content->'testCase'->>'name' AS test_case_name,
       s.content->'testCase'->>'type' AS test_case_type,
       collector.ref_id(s.content->'testSuiteRun') AS test_suite_run_id,
       collector.ref_id(s.content->'environment') AS environment,
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
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'testcaserun';

CREATE VIEW api.test_suite_runs AS
SELECT s.subject_id AS run_id, s.subject_source AS source, s.first_time AS time,
       s.content->'testSuite'->>'id' AS test_suite_id, s.content->'testSuite'->>'name' AS test_suite_name,
       collector.ref_id(s.content->'environment') AS environment,
       s.status, s.content->>'outcome' AS outcome, s.content->>'reason' AS reason,
       s.content->>'severity' AS severity,
       (s.predicate_times->>'queued')::timestamptz AS queued_at,
       (s.predicate_times->>'started')::timestamptz AS started_at,
       (s.predicate_times->>'finished')::timestamptz AS finished_at,
       extract(epoch FROM (s.predicate_times->>'finished')::timestamptz
                        - (s.predicate_times->>'started')::timestamptz)::double precision AS duration_s,
       extract(epoch FROM (s.predicate_times->>'started')::timestamptz
                        - (s.predicate_times->>'queued')::timestamptz)::double precision AS queue_s,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'testsuiterun';

CREATE VIEW api.artifacts AS
SELECT s.subject_id AS artifact_id, s.subject_source AS source, s.first_time AS time, s.status,
       (s.predicate_times->>'packaged')::timestamptz AS packaged_at,
       (s.predicate_times->>'signed')::timestamptz AS signed_at,
       (s.predicate_times->>'published')::timestamptz AS published_at,
       (s.predicate_times->>'downloaded')::timestamptz AS downloaded_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       collector.ref_id(s.content->'change') AS change_id,
       s.content->'change'->>'source' AS change_source,
       s.content->'sbom'->>'uri' AS sbom_uri, s.content->>'signature' AS signature,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'artifact';

CREATE VIEW api.changes AS
SELECT s.subject_id AS change_id, s.subject_source AS source, s.first_time AS time,
       collector.ref_id(s.content->'repository') AS repository, s.status,
       s.content->>'description' AS description,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'updated')::timestamptz AS updated_at_last_update,
       (s.predicate_times->>'reviewed')::timestamptz AS reviewed_at,
       (s.predicate_times->>'merged')::timestamptz AS merged_at,
       (s.predicate_times->>'abandoned')::timestamptz AS abandoned_at,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'change';

CREATE VIEW api.branches AS
SELECT s.subject_id AS branch_id, s.subject_source AS source, s.first_time AS time,
       collector.ref_id(s.content->'repository') AS repository, s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'branch';

CREATE VIEW api.repositories AS
SELECT s.subject_id AS repository_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'name' AS name, s.content->>'owner' AS owner,
       coalesce(s.content->>'uri', s.content->>'url') AS url, s.content->>'viewUrl' AS view_url,
       s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'modified')::timestamptz AS modified_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'repository';

CREATE VIEW api.environments AS
SELECT s.subject_id AS environment_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'name' AS name, coalesce(s.content->>'uri', s.content->>'url') AS url,
       s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'modified')::timestamptz AS modified_at,
       (s.predicate_times->>'deleted')::timestamptz AS deleted_at,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'environment';

CREATE VIEW api.incidents AS
SELECT s.subject_id AS incident_id, s.subject_source AS source, s.first_time AS time,
       collector.ref_id(s.content->'environment') AS environment,
       collector.ref_id(s.content->'service') AS service,
       s.content->>'artifactId' AS artifact_id, s.content->>'description' AS description,
       s.content->>'ticketURI' AS ticket_uri, s.status,
       (s.predicate_times->>'detected')::timestamptz AS detected_at,
       (s.predicate_times->>'reported')::timestamptz AS reported_at,
       (s.predicate_times->>'resolved')::timestamptz AS resolved_at,
       extract(epoch FROM (s.predicate_times->>'resolved')::timestamptz
           - least((s.predicate_times->>'detected')::timestamptz,
                   (s.predicate_times->>'reported')::timestamptz))::double precision
           AS time_to_restore_s,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'incident';

CREATE VIEW api.tickets AS
SELECT s.subject_id AS ticket_id, s.subject_source AS source, s.first_time AS time,
       s.content->>'summary' AS summary, s.content->>'ticketType' AS ticket_type,
       s.content->>'priority' AS priority, s.content->>'group' AS "group",
       s.content->>'creator' AS creator, s.content->'assignees' AS assignees,
       s.content->'labels' AS labels, s.content->>'milestone' AS milestone,
       s.content->>'resolution' AS resolution, s.content->>'uri' AS uri, s.status,
       (s.predicate_times->>'created')::timestamptz AS created_at,
       (s.predicate_times->>'updated')::timestamptz AS updated_at_last_update,
       (s.predicate_times->>'closed')::timestamptz AS closed_at,
       s.last_time AS updated_at, s.events, s.last_payload
FROM collector.subjects s WHERE s.subject_type = 'ticket';

CREATE VIEW api.deployments AS
SELECT d.time, d.environment, d.service, d.artifact_id, d.action,
       d.event_id, d.event_source, d.event_type
FROM collector.deployments d;

CREATE VIEW api.service_state AS
SELECT s.environment, s.service, s.artifact_id,
       CASE WHEN s.last_action = 'removed' THEN 'removed' ELSE 'running' END AS state,
       s.last_action, s.since
FROM collector.service_state s;

-- DORA ---------------------------------------------------------------------------------------

-- The deployments the four metrics count: service deployed or upgraded events.
CREATE FUNCTION collector.dora_deployments(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS SETOF collector.deployments
LANGUAGE sql STABLE AS $$
    SELECT * FROM collector.deployments d
    WHERE d.time >= from_time AND d.time < to_time
      AND d.action IN ('deployed', 'upgraded')
      AND (environments IS NULL OR d.environment = ANY (environments))
      AND (services IS NULL OR d.service = ANY (services))
$$;

-- Lead time of one deployment: from the change merged that produced its artifact (through the
-- artifact's `packaged` change reference), else from the artifact's publication, else from its
-- packaging, to the deployment.
CREATE FUNCTION collector.dora_lead_times(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, lead_time_s double precision)
LANGUAGE sql STABLE AS $$
    SELECT d.time,
           extract(epoch FROM d.time - coalesce(
               (c.predicate_times->>'merged')::timestamptz,
               (a.predicate_times->>'published')::timestamptz,
               (a.predicate_times->>'packaged')::timestamptz))::double precision
    FROM collector.dora_deployments(from_time, to_time, environments, services) d
    JOIN LATERAL (
        SELECT * FROM collector.subjects a
        WHERE a.subject_type = 'artifact' AND a.subject_id = d.artifact_id
        ORDER BY a.first_time LIMIT 1
    ) a ON true
    LEFT JOIN LATERAL (
        SELECT * FROM collector.subjects c
        WHERE c.subject_type = 'change' AND c.subject_id = collector.ref_id(a.content->'change')
          AND c.subject_source = coalesce(a.content->'change'->>'source', c.subject_source)
        ORDER BY c.first_time LIMIT 1
    ) c ON true
$$;

-- A deployment failed when, before the next deployment of the same service to the same
-- environment, that service was rolled back there or an incident was detected or reported for
-- it there.
CREATE FUNCTION collector.dora_failures(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, failed boolean)
LANGUAGE sql STABLE AS $$
    WITH d AS (
        SELECT d.time, d.environment, d.service,
               (SELECT min(n.time) FROM collector.deployments n
                WHERE n.environment IS NOT DISTINCT FROM d.environment AND n.service = d.service
                  AND n.action IN ('deployed', 'upgraded') AND n.time > d.time) AS next_time
        FROM collector.dora_deployments(from_time, to_time, environments, services) d
    )
    SELECT d.time,
           EXISTS (SELECT FROM collector.deployments r
                   WHERE r.action = 'rolledback' AND r.service = d.service
                     AND r.environment IS NOT DISTINCT FROM d.environment
                     AND r.time > d.time AND (d.next_time IS NULL OR r.time <= d.next_time))
        OR EXISTS (SELECT FROM collector.subjects i
                   WHERE i.subject_type = 'incident' AND i.first_time > d.time
                     AND (d.next_time IS NULL OR i.first_time <= d.next_time)
                     AND collector.ref_id(i.content->'service') = d.service
                     AND collector.ref_id(i.content->'environment') IS NOT DISTINCT FROM d.environment)
    FROM d
$$;

-- Restore time of each incident that began in the range: detected (or reported) → resolved.
CREATE FUNCTION collector.dora_restores(
    from_time timestamptz, to_time timestamptz, environments text[], services text[]
) RETURNS TABLE ("time" timestamptz, restore_s double precision)
LANGUAGE sql STABLE AS $$
    SELECT i.first_time,
           extract(epoch FROM (i.predicate_times->>'resolved')::timestamptz - i.first_time)::double precision
    FROM collector.subjects i
    WHERE i.subject_type = 'incident' AND i.first_time >= from_time AND i.first_time < to_time
      AND (environments IS NULL OR collector.ref_id(i.content->'environment') = ANY (environments))
      AND (services IS NULL OR collector.ref_id(i.content->'service') = ANY (services))
$$;

CREATE FUNCTION collector.buckets(from_time timestamptz, to_time timestamptz, bucket interval)
RETURNS TABLE (bucket_start timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT g FROM generate_series(date_bin(bucket, from_time, '2001-01-01'::timestamptz),
                                  to_time - interval '1 microsecond', bucket) AS g
$$;

CREATE FUNCTION api.dora_deployment_frequency(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, days double precision, per_day double precision, rating text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT n, span, n / span,
           CASE WHEN n / span >= 1 THEN 'elite' WHEN n / span >= 1.0 / 7 THEN 'high'
                WHEN n / span >= 1.0 / 30 THEN 'medium' ELSE 'low' END
    FROM (SELECT count(*) AS n,
                 greatest(extract(epoch FROM to_time - from_time) / 86400, 1e-9)::double precision AS span
          FROM collector.dora_deployments(from_time, to_time, environments, services)) AS x
$$;

CREATE FUNCTION api.dora_deployment_frequency_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, deployments bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT b.bucket_start, count(d.time)
    FROM collector.buckets(from_time, to_time, bucket) b
    LEFT JOIN collector.dora_deployments(from_time, to_time, environments, services) d
      ON d.time >= b.bucket_start AND d.time < b.bucket_start + bucket
    GROUP BY b.bucket_start ORDER BY b.bucket_start
$$;

CREATE FUNCTION api.dora_lead_time(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, median_s double precision, p90_s double precision,
                 mean_s double precision, rating text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT n, m, p, a,
           CASE WHEN m IS NULL THEN NULL WHEN m < 86400 THEN 'elite' WHEN m < 7 * 86400 THEN 'high'
                WHEN m < 30 * 86400 THEN 'medium' ELSE 'low' END
    FROM (SELECT count(*) AS n,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY l.lead_time_s) AS m,
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY l.lead_time_s) AS p,
                 avg(l.lead_time_s) AS a
          FROM collector.dora_lead_times(from_time, to_time, environments, services) l
          WHERE l.lead_time_s IS NOT NULL) AS x
$$;

CREATE FUNCTION api.dora_lead_time_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, deployments bigint, median_s double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT b.bucket_start, count(l.lead_time_s),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY l.lead_time_s)
    FROM collector.buckets(from_time, to_time, bucket) b
    LEFT JOIN collector.dora_lead_times(from_time, to_time, environments, services) l
      ON l.time >= b.bucket_start AND l.time < b.bucket_start + bucket AND l.lead_time_s IS NOT NULL
    GROUP BY b.bucket_start ORDER BY b.bucket_start
$$;

CREATE FUNCTION api.dora_change_failure_rate(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (deployments bigint, failed bigint, rate double precision, rating text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT n, f, r,
           CASE WHEN r IS NULL THEN NULL WHEN r <= 0.05 THEN 'elite' WHEN r <= 0.10 THEN 'high'
                WHEN r <= 0.15 THEN 'medium' ELSE 'low' END
    FROM (SELECT count(*) AS n, count(*) FILTER (WHERE failed) AS f,
                 (count(*) FILTER (WHERE failed))::double precision / nullif(count(*), 0) AS r
          FROM collector.dora_failures(from_time, to_time, environments, services)) AS x
$$;

CREATE FUNCTION api.dora_change_failure_rate_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, deployments bigint, failed bigint, rate double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT b.bucket_start, count(f.time), count(f.time) FILTER (WHERE f.failed),
           (count(f.time) FILTER (WHERE f.failed))::double precision / nullif(count(f.time), 0)
    FROM collector.buckets(from_time, to_time, bucket) b
    LEFT JOIN collector.dora_failures(from_time, to_time, environments, services) f
      ON f.time >= b.bucket_start AND f.time < b.bucket_start + bucket
    GROUP BY b.bucket_start ORDER BY b.bucket_start
$$;

CREATE FUNCTION api.dora_time_to_restore(
    from_time timestamptz, to_time timestamptz,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE (incidents bigint, resolved bigint, median_s double precision,
                 p90_s double precision, rating text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT n, k, m, p,
           CASE WHEN m IS NULL THEN NULL WHEN m < 3600 THEN 'elite' WHEN m < 86400 THEN 'high'
                WHEN m < 7 * 86400 THEN 'medium' ELSE 'low' END
    FROM (SELECT count(*) AS n, count(restore_s) AS k,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY restore_s) AS m,
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY restore_s) AS p
          FROM collector.dora_restores(from_time, to_time, environments, services)) AS x
$$;

CREATE FUNCTION api.dora_time_to_restore_series(
    from_time timestamptz, to_time timestamptz, bucket interval,
    environments text[] DEFAULT NULL, services text[] DEFAULT NULL
) RETURNS TABLE ("time" timestamptz, incidents bigint, median_s double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT b.bucket_start, count(r.time),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.restore_s)
    FROM collector.buckets(from_time, to_time, bucket) b
    LEFT JOIN collector.dora_restores(from_time, to_time, environments, services) r
      ON r.time >= b.bucket_start AND r.time < b.bucket_start + bucket
    GROUP BY b.bucket_start ORDER BY b.bucket_start
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA collector FROM PUBLIC;
GRANT EXECUTE ON FUNCTION collector.ingest TO collector_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO collector_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api TO collector_reader;
