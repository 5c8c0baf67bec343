-- ClusterCockpit messages as their real senders write them.
--
-- api.jobs.stop_time of a stop stamped with the job's start: cc-lib's
-- ccMessage.NewJobStopEvent stamps a stop_job with the job's startTime and carries the job as
-- cc-backend holds it (schema.Job: startTime and duration, no stopTime). stop_time fell back to
-- the stop event's time, so such a job stopped when it started, and dashboards counted its
-- stop, its duration and its node hours at its start. It is now the stopTime, else the job's
-- startTime plus the stop's duration, else the stop event's time. A generated column's
-- expression cannot be changed in PostgreSQL 15: a new column replaces it, and api.jobs reads
-- the new one under the old name (its grants and comments stay).
--
-- api.cluster_events.cluster: cc-backend's NATS job and node state events carry no tags, so an
-- event without a cluster tag (nor a configured one) now takes the cluster of its JSON.

ALTER TABLE collector.jobs ADD COLUMN new_stop_time timestamptz GENERATED ALWAYS AS (
    CASE WHEN stop_event_time IS NOT NULL THEN coalesce(
        collector.epoch_time(stop_facts ->> 'stop_time'),
        to_timestamp(coalesce((start_facts ->> 'start_time')::double precision,
                              (stop_facts ->> 'start_time')::double precision)
                     + (stop_facts ->> 'duration')::double precision),
        stop_event_time)
    END) STORED;

CREATE OR REPLACE VIEW api.jobs AS
SELECT cluster, job_id, state, job_state, user_name, project, job_name, sub_cluster, partition,
       nodes, num_nodes, num_hwthreads, num_acc, walltime_s, start_time,
       new_stop_time AS stop_time, duration_s,
       start_event_id, start_event_time, stop_event_id, stop_event_time
FROM collector.jobs;

ALTER TABLE collector.jobs DROP COLUMN stop_time;  -- and its index
ALTER TABLE collector.jobs RENAME COLUMN new_stop_time TO stop_time;
CREATE INDEX jobs_stop_time ON collector.jobs (stop_time);

COMMENT ON COLUMN api.jobs.stop_time IS 'When the job stopped: the stop event''s stopTime, else the job''s startTime plus the stop''s duration (cc-lib stamps a stop with the job''s start and sends no stopTime), else the stop event''s time; null while running.';
COMMENT ON COLUMN api.cluster_events.cluster IS 'Cluster name: the cluster tag, else the source''s configured cluster or ?cluster=, else the cluster of the event''s JSON (cc-backend''s job and node state events carry no tags).';
