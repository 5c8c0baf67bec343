-- api.events_mentioning: the events of a time range whose payload holds a value, e.g. a user's
-- id: what oCIS eventhistory's GetEventsForUser answers (api.events_by_id answers its
-- GetEvents). api schema version 1.2.
--
-- No index can serve a match at any depth of the document: every event of the range is read.
-- The range is planned with its bounds known (a custom plan every call), so only its time
-- partitions are planned: bounds such as now() - interval '14 days' in a plain query on
-- api.events plan every partition first (0.4 s of planning for 280 partitions, against 0.04 s).
-- Never JIT, as api.events_by_id: the estimates of a long range would JIT-compile it each call.

CREATE FUNCTION api.events_mentioning(value text, from_time timestamptz,
                                      to_time timestamptz DEFAULT 'infinity')
RETURNS SETOF api.events
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan SET jit = off AS $$
BEGIN
    IF value IS NULL THEN  -- it would match JSON nulls
        RETURN;
    END IF;
    RETURN QUERY
        SELECT e.* FROM api.events e
        WHERE e.time >= from_time AND e.time < to_time
          AND jsonb_path_exists(e.payload, 'strict $.** ? (@ == $value)',
                                jsonb_build_object('value', value))
        ORDER BY e.time, e.seq;
END
$$;

COMMENT ON FUNCTION api.events_mentioning(text, timestamptz, timestamptz) IS 'Events of [from_time, to_time) whose payload holds value as a string, as any member or array element at any depth, ordered by time: e.g. the events naming a user''s id (oCIS eventhistory''s GetEventsForUser). The whole string must equal value (not a part of a longer one; numbers and object keys do not match). Reads every event of the range: keep it short. No row when value is null.';

CREATE OR REPLACE FUNCTION api.schema_version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '1.2' $$;

REVOKE ALL ON FUNCTION api.events_mentioning(text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.events_mentioning(text, timestamptz, timestamptz) TO collector_reader;
