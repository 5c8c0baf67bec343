-- The queries `collector bench api` times: what Grafana panels and analysts send, one or more
-- per object of schema `api` (a test fails when an object has none). Each is sent as Grafana
-- sends it, with its values inlined as literals (client-side binding). The first comment line
-- of a block says what it stands for.
--
-- Parameters: from_time / to_time, the window (the last 30 days of the data); event_type,
-- source, subject, event_id, ids (100 CDEvents ids), mixed_ids (100 ids of any family) and
-- services (3 services) are picked from the data in the window.

-- name: pipeline_runs_latest
-- table panel: the latest 1,000 pipeline runs begun in the window
SELECT * FROM api.pipeline_runs
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: pipeline_runs_per_day
-- time series: runs, failures and median duration per day
SELECT date_trunc('day', time) AS day, count(*) AS runs,
       count(*) FILTER (WHERE outcome = 'failure') AS failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_s) AS median_duration_s
FROM api.pipeline_runs
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1 ORDER BY 1;

-- name: task_runs_latest
-- table panel: the latest 1,000 task runs begun in the window
SELECT * FROM api.task_runs
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: task_runs_by_task
-- bar chart: runs, failures and mean duration per task name
SELECT task_name, count(*) AS runs, count(*) FILTER (WHERE outcome = 'failure') AS failed,
       avg(duration_s) AS mean_duration_s
FROM api.task_runs
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1 ORDER BY 2 DESC;

-- name: builds_latest
-- table panel: the latest 1,000 builds begun in the window
SELECT * FROM api.builds
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: builds_per_day
-- time series: builds, mean duration and mean queue time per day
SELECT date_trunc('day', time) AS day, count(*) AS builds, avg(duration_s) AS mean_duration_s,
       avg(queue_s) AS mean_queue_s
FROM api.builds
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1 ORDER BY 1;

-- name: test_case_runs_latest
-- table panel: the latest 1,000 test case runs begun in the window
SELECT * FROM api.test_case_runs
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: test_case_runs_by_outcome
-- pie chart: test case runs per test type and outcome
SELECT test_case_type, outcome, count(*) AS runs
FROM api.test_case_runs
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1, 2 ORDER BY 1, 2;

-- name: test_suite_runs_latest
-- table panel: the latest 1,000 test suite runs begun in the window
SELECT * FROM api.test_suite_runs
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: test_suite_runs_per_day
-- time series: suite runs and failures per day
SELECT date_trunc('day', time) AS day, count(*) AS runs,
       count(*) FILTER (WHERE outcome = 'failure') AS failed
FROM api.test_suite_runs
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1 ORDER BY 1;

-- name: artifacts_latest
-- table panel: the latest 1,000 artifacts first seen in the window
SELECT * FROM api.artifacts
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: artifacts_per_day
-- time series: artifacts per day and status
SELECT date_trunc('day', time) AS day, status, count(*) AS artifacts
FROM api.artifacts
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1, 2 ORDER BY 1, 2;

-- name: changes_latest
-- table panel: the latest 1,000 changes opened in the window
SELECT * FROM api.changes
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: changes_per_day
-- time series: changes merged per day and their median time from created to merged
SELECT date_trunc('day', merged_at) AS day, count(*) AS merged,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM merged_at - created_at)) AS median_open_s
FROM api.changes
WHERE time >= %(from_time)s AND time < %(to_time)s AND merged_at IS NOT NULL
GROUP BY 1 ORDER BY 1;

-- name: branches_latest
-- table panel: the latest 1,000 branches created in the window
SELECT * FROM api.branches
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: branches_by_repository
-- table panel: branches created and still active per repository
SELECT repository, count(*) AS created, count(*) FILTER (WHERE status = 'active') AS active
FROM api.branches
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1 ORDER BY 2 DESC LIMIT 50;

-- name: repositories_latest
-- table panel: the latest 1,000 repositories created in the window
SELECT * FROM api.repositories
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: repositories_all
-- table panel: every repository with its owner and status
SELECT repository_id, owner, status, created_at, last_event_at
FROM api.repositories ORDER BY repository_id;

-- name: environments_latest
-- table panel: the latest 1,000 environments created in the window
SELECT * FROM api.environments
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: environments_active
-- stat panel: environments that exist now
SELECT count(*) AS active FROM api.environments WHERE status = 'active';

-- name: incidents_latest
-- table panel: the latest 1,000 incidents begun in the window
SELECT * FROM api.incidents
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: incidents_by_service
-- table panel: incidents and mean time to restore per service and environment
SELECT service, environment, count(*) AS incidents, avg(time_to_restore_s) AS mean_restore_s
FROM api.incidents
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1, 2 ORDER BY 3 DESC;

-- name: tickets_latest
-- table panel: the latest 1,000 tickets created in the window
SELECT * FROM api.tickets
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: tickets_by_type
-- bar chart: tickets per type and status
SELECT ticket_type, status, count(*) AS tickets
FROM api.tickets
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1, 2 ORDER BY 1, 2;

-- name: deployments_latest
-- table panel: the latest 1,000 deployment events in the window
SELECT * FROM api.deployments
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: deployments_per_day
-- time series: deployment events per day, environment and action
SELECT date_trunc('day', time) AS day, environment, action, count(*) AS events
FROM api.deployments
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- name: service_state_all
-- table panel: what runs where now (the whole view)
SELECT * FROM api.service_state ORDER BY environment, service;

-- name: events_latest
-- table panel: the latest 1,000 events of any kind in the window
SELECT * FROM api.events
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: events_by_type
-- table panel: the latest 1,000 events of one type in the window
SELECT * FROM api.events
WHERE type = %(event_type)s AND time >= %(from_time)s AND time < %(to_time)s
ORDER BY time DESC LIMIT 1000;

-- name: events_by_source
-- table panel: the latest 1,000 events of one source in the window
SELECT * FROM api.events
WHERE source = %(source)s AND time >= %(from_time)s AND time < %(to_time)s
ORDER BY time DESC LIMIT 1000;

-- name: events_by_subject
-- table panel: the history of one subject (a service) in the window
SELECT * FROM api.events
WHERE subject = %(subject)s AND time >= %(from_time)s AND time < %(to_time)s
ORDER BY time DESC LIMIT 1000;

-- name: events_per_type
-- bar chart: events per type in the window
SELECT type, count(*) AS events
FROM api.events
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1 ORDER BY 2 DESC;

-- name: event
-- lookup: one event by id (api.event)
SELECT * FROM api.event(%(event_id)s);

-- name: events_by_id
-- lookup: 100 CDEvents by id (the oCIS eventhistory lookup)
SELECT * FROM api.events_by_id(%(ids)s);

-- name: events_by_id_mixed
-- lookup: 100 events of any family by id, a quarter of them ClusterCockpit messages
SELECT * FROM api.events_by_id(%(mixed_ids)s);

-- name: events_mentioning
-- lookup: the events of the window naming a value at any depth (eventhistory's GetEventsForUser)
SELECT * FROM api.events_mentioning(%(subject)s, %(from_time)s, %(to_time)s);

-- name: rejected_events_latest
-- table panel: the latest 1,000 rejected inputs received in the window
SELECT * FROM api.rejected_events
WHERE received_at >= %(from_time)s AND received_at < %(to_time)s
ORDER BY received_at DESC LIMIT 1000;

-- name: duplicates_latest
-- table panel: the latest 1,000 batches with replays received in the window
SELECT * FROM api.duplicates
WHERE received_at >= %(from_time)s AND received_at < %(to_time)s
ORDER BY received_at DESC LIMIT 1000;

-- name: duplicates_per_day
-- time series: replays per day and source
SELECT date_trunc('day', received_at) AS day, received_via, sum(duplicates) AS duplicates
FROM api.duplicates
WHERE received_at >= %(from_time)s AND received_at < %(to_time)s GROUP BY 1, 2 ORDER BY 1, 2;

-- name: cluster_events_latest
-- table panel: the latest 1,000 cluster events in the window
SELECT * FROM api.cluster_events
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: cluster_events_per_day
-- time series: cluster events per day and name
SELECT date_trunc('day', time) AS day, name, count(*) AS events
FROM api.cluster_events
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1, 2 ORDER BY 1, 2;

-- name: cluster_logs_latest
-- logs panel: the latest 1,000 log lines in the window
SELECT * FROM api.cluster_logs
WHERE time >= %(from_time)s AND time < %(to_time)s ORDER BY time DESC LIMIT 1000;

-- name: cluster_logs_errors
-- logs panel: the latest 1,000 error lines in the window
SELECT * FROM api.cluster_logs
WHERE level = 'error' AND time >= %(from_time)s AND time < %(to_time)s
ORDER BY time DESC LIMIT 1000;

-- name: cluster_logs_per_day
-- time series: log lines per day and level
SELECT date_trunc('day', time) AS day, level, count(*) AS lines
FROM api.cluster_logs
WHERE time >= %(from_time)s AND time < %(to_time)s GROUP BY 1, 2 ORDER BY 1, 2;

-- name: jobs_latest
-- table panel: the latest 1,000 jobs started in the window
SELECT * FROM api.jobs
WHERE start_time >= %(from_time)s AND start_time < %(to_time)s
ORDER BY start_time DESC LIMIT 1000;

-- name: jobs_per_day
-- time series: jobs started per day and final state, with their node hours
SELECT date_trunc('day', start_time) AS day, job_state, count(*) AS jobs,
       sum(num_nodes * duration_s) / 3600 AS node_hours
FROM api.jobs
WHERE start_time >= %(from_time)s AND start_time < %(to_time)s GROUP BY 1, 2 ORDER BY 1, 2;

-- name: jobs_running
-- table panel: the jobs running now
SELECT * FROM api.jobs WHERE state = 'running' ORDER BY start_time DESC;

-- name: dora_deployment_frequency
-- DORA stat: deployment frequency, all services and environments
SELECT * FROM api.dora_deployment_frequency(%(from_time)s, %(to_time)s);

-- name: dora_deployment_frequency_services
-- DORA stat: deployment frequency of 3 services
SELECT * FROM api.dora_deployment_frequency(%(from_time)s, %(to_time)s, services => %(services)s);

-- name: dora_deployment_frequency_series
-- DORA time series: deployments per day, all services and environments
SELECT * FROM api.dora_deployment_frequency_series(%(from_time)s, %(to_time)s, '1 day');

-- name: dora_deployment_frequency_series_services
-- DORA time series: deployments per day of 3 services
SELECT * FROM api.dora_deployment_frequency_series(
    %(from_time)s, %(to_time)s, '1 day', services => %(services)s);

-- name: dora_lead_time
-- DORA stat: lead time for changes, all services and environments
SELECT * FROM api.dora_lead_time(%(from_time)s, %(to_time)s);

-- name: dora_lead_time_services
-- DORA stat: lead time for changes of 3 services
SELECT * FROM api.dora_lead_time(%(from_time)s, %(to_time)s, services => %(services)s);

-- name: dora_lead_time_series
-- DORA time series: median lead time per day, all services and environments
SELECT * FROM api.dora_lead_time_series(%(from_time)s, %(to_time)s, '1 day');

-- name: dora_lead_time_series_services
-- DORA time series: median lead time per day of 3 services
SELECT * FROM api.dora_lead_time_series(
    %(from_time)s, %(to_time)s, '1 day', services => %(services)s);

-- name: dora_change_failure_rate
-- DORA stat: change failure rate, all services and environments
SELECT * FROM api.dora_change_failure_rate(%(from_time)s, %(to_time)s);

-- name: dora_change_failure_rate_services
-- DORA stat: change failure rate of 3 services
SELECT * FROM api.dora_change_failure_rate(%(from_time)s, %(to_time)s, services => %(services)s);

-- name: dora_change_failure_rate_series
-- DORA time series: change failure rate per day, all services and environments
SELECT * FROM api.dora_change_failure_rate_series(%(from_time)s, %(to_time)s, '1 day');

-- name: dora_change_failure_rate_series_services
-- DORA time series: change failure rate per day of 3 services
SELECT * FROM api.dora_change_failure_rate_series(
    %(from_time)s, %(to_time)s, '1 day', services => %(services)s);

-- name: dora_time_to_restore
-- DORA stat: time to restore, all services and environments
SELECT * FROM api.dora_time_to_restore(%(from_time)s, %(to_time)s);

-- name: dora_time_to_restore_services
-- DORA stat: time to restore of 3 services
SELECT * FROM api.dora_time_to_restore(%(from_time)s, %(to_time)s, services => %(services)s);

-- name: dora_time_to_restore_series
-- DORA time series: median time to restore per day, all services and environments
SELECT * FROM api.dora_time_to_restore_series(%(from_time)s, %(to_time)s, '1 day');

-- name: dora_time_to_restore_series_services
-- DORA time series: median time to restore per day of 3 services
SELECT * FROM api.dora_time_to_restore_series(
    %(from_time)s, %(to_time)s, '1 day', services => %(services)s);

-- name: dora_by_service
-- DORA table: the four metrics and ratings of every service
SELECT * FROM api.dora_by_service(%(from_time)s, %(to_time)s);

-- name: schema_version
-- the API version (api.schema_version)
SELECT api.schema_version();
