-- Runtime queries, loaded by name (collector/db/queries.py). Values always travel as parameters.

-- name: ingest
-- Arrays travel in binary format: no quoting of JSON text in Python, no parsing of array
-- literals in the server. The casts type empty and all-NULL arrays, which carry no element type.
SELECT stored, duplicate_positions, rejected FROM collector.ingest(
    %(ids)b::text[], %(sources)b::text[], %(types)b::text[], %(times)b::timestamptz[],
    %(families)b::text[], %(subjects)b::text[], %(subject_types)b::text[],
    %(predicates)b::text[], %(type_versions)b::text[], %(payloads)b::text[],
    %(metadatas)b::text[], %(received_ats)b::timestamptz[], %(received_vias)b::text[],
    %(rejected_reasons)b::text[], %(rejected_locations)b::text[], %(rejected_raws)b::text[],
    %(rejected_sizes)b::integer[], %(rejected_received_ats)b::timestamptz[],
    %(rejected_received_vias)b::text[], %(rejected_metadatas)b::text[]
);

-- name: ensure_partitions_ahead
SELECT collector.ensure_partitions_ahead();

-- name: create_partitions_ahead
SELECT family, partition_name FROM collector.create_partitions_ahead();

-- name: drop_expired_partitions
SELECT collector.drop_expired_partitions(%(family)s, %(retention)s::interval);

-- name: expired_partitions
-- What drop_expired_partitions would drop now: after it warned that the table was busy, the
-- partitions it kept.
SELECT partition_name FROM collector.time_partitions(%(family)s)
WHERE upper_bound <= now() - %(retention)s::interval
ORDER BY lower_bound;

-- name: migration_lock
SELECT pg_advisory_lock(hashtext('collector.migrate'));

-- name: migration_unlock
SELECT pg_advisory_unlock(hashtext('collector.migrate'));

-- name: ledger_exists
SELECT to_regclass('collector.migrations') IS NOT NULL;

-- name: applied_migrations
SELECT version, name, checksum FROM collector.migrations ORDER BY version;

-- name: record_migration
INSERT INTO collector.migrations (version, name, checksum) VALUES (%s, %s, %s);

-- name: bench_copy_table
CREATE TEMP TABLE bench_copy (payload jsonb NOT NULL);

-- name: bench_copy
COPY bench_copy (payload) FROM STDIN;

-- name: bench_baseline_table
CREATE TABLE bench_events (id bigserial, ts timestamptz, type text, payload jsonb);

-- name: bench_baseline_copy
COPY bench_events (ts, type, payload) FROM STDIN;

-- name: bench_baseline_count
SELECT count(*) FROM bench_events;

-- name: bench_events_counts
SELECT (SELECT count(*) FROM api.events), (SELECT count(DISTINCT (source, type, id)) FROM api.events),
       (SELECT count(*) FROM api.rejected_events);

-- name: checkpoint
CHECKPOINT;

-- name: server_version
SELECT current_setting('server_version');

-- name: api_schema
SELECT obj_description('api'::regnamespace, 'pg_namespace'), api.schema_version();

-- name: api_views
SELECT c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c
WHERE c.relnamespace = 'api'::regnamespace AND c.relkind IN ('v', 'm', 'r', 'p', 'f')
ORDER BY c.relname;

-- name: api_view_columns
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(col_description(c.oid, a.attnum), '')
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'api'::regnamespace AND c.relkind IN ('v', 'm', 'r', 'p', 'f')
ORDER BY c.relname, a.attnum;

-- name: api_functions
SELECT p.proname, p.oid::regprocedure::text, pg_get_function_arguments(p.oid),
       pg_get_function_result(p.oid), coalesce(obj_description(p.oid, 'pg_proc'), ''),
       coalesce((SELECT array_agg(a.name ORDER BY a.n)
                 FROM unnest(p.proargnames, p.proargmodes) WITH ORDINALITY AS a(name, mode, n)
                 WHERE a.mode = 't'), '{}'),
       coalesce((SELECT array_agg(format_type(a.type, NULL) ORDER BY a.n)
                 FROM unnest(p.proallargtypes, p.proargmodes) WITH ORDINALITY AS a(type, mode, n)
                 WHERE a.mode = 't'), '{}')
FROM pg_proc p
WHERE p.pronamespace = 'api'::regnamespace
ORDER BY p.proname, 2;

-- name: bench_server_settings
SELECT current_setting('server_version'), current_setting('fsync'),
       current_setting('synchronous_commit'), current_setting('shared_buffers'),
       current_setting('max_wal_size'), pg_backend_pid();

-- name: bench_checkpoint
CHECKPOINT;

-- name: bench_raw_table
CREATE TABLE bench_raw (id bigserial, ts timestamptz, type text, payload jsonb);

-- name: bench_raw_copy
COPY bench_raw (ts, type, payload) FROM STDIN;

-- name: bench_raw_count
SELECT count(*) FROM bench_raw;

-- name: bench_events_count
SELECT count(*) FROM api.events;

-- name: bench_rejected_count
SELECT count(*) FROM api.rejected_events;

-- name: demo_anchor
SELECT time FROM api.events_by_id(ARRAY[%(id)s]::text[])
WHERE source = %(source)s AND type = %(type)s ORDER BY time LIMIT 1;

-- name: demo_partitions
-- The time partitions of `families` from `from_time` to `to_time`, created before ingest: two
-- batches creating partitions at the same time can deadlock (each is then retried).
SELECT count(*) FILTER (WHERE collector.ensure_partition(p.family, g.at))
FROM collector.partition_policy p
CROSS JOIN LATERAL generate_series(date_trunc(p.period, %(from_time)s::timestamptz, 'UTC'),
                                   %(to_time)s::timestamptz, ('1 ' || p.period)::interval) AS g(at)
WHERE p.family = ANY (%(families)s::text[]);

-- name: demo_analyze
-- Statistics for what the demo stored. Without them (autovacuum off, or not there yet after a
-- bulk load) the planner guesses the size of every time range, and plans made on such guesses
-- can be many times slower than those made knowing. A partitioned table is analysed with
-- each of its partitions.
ANALYZE collector.events, collector.event_identities, collector.subjects, collector.deployments,
        collector.service_state, collector.jobs;

-- name: bench_api_stamp
-- What a database kept by `collector bench api --keep` holds (JSON), or NULL.
SELECT shobj_description(d.oid, 'pg_database') FROM pg_database d WHERE d.datname = %(name)s;

-- name: bench_api_counts
SELECT (SELECT count(*) FROM api.events), (SELECT count(*) FROM api.rejected_events),
       (SELECT count(*) FROM collector.subjects), (SELECT count(*) FROM collector.deployments),
       (SELECT count(*) FROM collector.jobs), pg_database_size(current_database()),
       (SELECT coalesce(sum(duplicates), 0) FROM api.duplicates);

-- name: bench_api_vacuum
VACUUM ANALYZE;

-- name: bench_api_reader
SET ROLE collector_reader;

-- name: bench_api_parameters
-- Values for the timed queries, picked from the window's data.
SELECT
    (SELECT d.event_type FROM api.deployments d
     WHERE d.time >= %(from_time)s AND d.time < %(to_time)s
     GROUP BY d.event_type ORDER BY count(*) DESC, d.event_type LIMIT 1) AS event_type,
    (SELECT e.source FROM api.events e
     WHERE e.time >= %(from_time)s AND e.time < %(to_time)s AND e.family = 'cdevents'
     GROUP BY e.source ORDER BY count(*) DESC, e.source LIMIT 1) AS source,
    (SELECT d.service FROM api.deployments d
     WHERE d.time >= %(from_time)s AND d.time < %(to_time)s
     GROUP BY d.service ORDER BY count(*) DESC, d.service LIMIT 1) AS subject,
    (SELECT e.id FROM api.events e
     WHERE e.time >= %(from_time)s + (%(to_time)s - %(from_time)s) / 2 AND e.time < %(to_time)s
       AND e.family = 'cdevents'
     ORDER BY e.time LIMIT 1) AS event_id,
    ARRAY(SELECT e.id FROM api.events e
          WHERE e.time >= %(from_time)s AND e.time < %(to_time)s AND e.family = 'cdevents'
          ORDER BY md5(e.id) LIMIT 100) AS ids,
    ARRAY(SELECT x.id FROM (
              (SELECT e.id FROM api.events e
               WHERE e.time >= %(from_time)s AND e.time < %(to_time)s AND e.family = 'cdevents'
               ORDER BY md5(e.id) DESC LIMIT 75)
              UNION ALL
              (SELECT e.id FROM api.events e
               WHERE e.time >= %(from_time)s AND e.time < %(to_time)s
                 AND e.family IN ('ccmessage', 'cclog')
               ORDER BY md5(e.id) LIMIT 25)) AS x) AS mixed_ids,
    ARRAY(SELECT s.service FROM (
              SELECT DISTINCT d.service FROM api.deployments d
              WHERE d.time >= %(from_time)s AND d.time < %(to_time)s) AS s
          ORDER BY md5(s.service) LIMIT 3) AS services;

-- name: bench_api_partitions
-- The time partitions holding `at` of every family, as maintenance creates them ahead.
SELECT count(*) FILTER (WHERE collector.ensure_partition(p.family, %(at)s))
FROM collector.partition_policy p;

-- name: bench_event_ids
SELECT id FROM api.events;
