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
