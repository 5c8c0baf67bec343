-- Runtime queries, loaded by name (collector/db/queries.py). Values always travel as parameters.

-- name: ingest
SELECT stored, duplicate_positions, rejected FROM collector.ingest(
    %(ids)s, %(sources)s, %(types)s, %(times)s, %(families)s, %(subjects)s, %(subject_types)s,
    %(predicates)s, %(type_versions)s, %(payloads)s, %(metadatas)s, %(received_ats)s,
    %(received_vias)s, %(rejected_reasons)s, %(rejected_locations)s, %(rejected_raws)s,
    %(rejected_sizes)s, %(rejected_received_ats)s, %(rejected_received_vias)s,
    %(rejected_metadatas)s
);

-- name: ensure_partitions_ahead
SELECT collector.ensure_partitions_ahead();

-- name: create_partitions_ahead
SELECT family, partition_name FROM collector.create_partitions_ahead();

-- name: drop_expired_partitions
SELECT collector.drop_expired_partitions(%(family)s, %(retention)s::interval);

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
