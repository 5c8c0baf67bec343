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
