-- Two things a reader of the SQL API was told wrong.
--
-- A _series function called with a NULL bucket said "bucket 00:00:00: use a positive
-- interval ...", naming a value the caller never gave: it now says the bucket is required.
-- And rejected_events.location said an array element is "index 2", while HTTP requests name
-- it "event 2" (as their problem+json answers do).

CREATE OR REPLACE FUNCTION collector.dora_arguments(from_time timestamptz, to_time timestamptz,
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
    IF bucket = interval '0' THEN  -- the _series functions pass a NULL bucket as 0
        RAISE EXCEPTION 'bucket is required: an interval such as ''1 day'', ''1 week'' or ''1 month'''
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

COMMENT ON COLUMN api.rejected_events.location IS 'Where in the delivery: "line 3" of a JSON-lines file, an NDJSON body or line protocol; "index 2" of a JSON array in a file or a NATS message, "event 2" of one in an HTTP request; null for a whole document.';
