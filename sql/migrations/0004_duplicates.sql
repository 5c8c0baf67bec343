-- api.duplicates: the replays collector.ingest recognised (collector.duplicates, 0001), for the
-- Collector health dashboard; api schema version 1.1.

-- The public API ---------------------------------------------------------------------------

CREATE VIEW api.duplicates AS
SELECT received_at, received_via, duplicates
FROM collector.duplicates;

COMMENT ON VIEW api.duplicates IS 'Replays of events already stored (identity (source, type, id) seen before, or twice in one batch): one row per ingest batch and source that had any, with how many. Replays are counted, never stored twice; events with no replay add no row. Sum duplicates over received_at for a rate.';
COMMENT ON COLUMN api.duplicates.received_at IS 'When collector received the batch holding the replays (the latest receive time among them).';
COMMENT ON COLUMN api.duplicates.received_via IS 'Name of the collector source that received them (e.g. inbox); matches api.events.received_via.';
COMMENT ON COLUMN api.duplicates.duplicates IS 'Number of replayed events in that batch from that source.';

CREATE OR REPLACE FUNCTION api.schema_version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '1.1' $$;

COMMENT ON FUNCTION api.schema_version() IS 'Version of the `api` schema, major.minor (e.g. 1.1). The objects of `api` are a contract: a minor version only adds objects or columns; a breaking change never alters an existing object but adds a new one (e.g. api.pipeline_runs_v2) and bumps the major version, the old one staying until announced removal.';

GRANT SELECT ON api.duplicates TO collector_reader;
