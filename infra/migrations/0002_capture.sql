-- Session capture (spec 12a/12b): stored recordings, and the retention job for telemetry.

-- One row per uploaded screen recording. The object itself lives in the object store
-- (sinks/object_store.py); this row says where, how big, its digest and how it is encrypted.
-- A row is written only after the object is complete, so a failed upload leaves nothing behind.
CREATE TABLE recordings (
  recording_id    text PRIMARY KEY,
  tenant          text NOT NULL,
  session_id      text NOT NULL REFERENCES sessions(session_id),
  url             text NOT NULL,
  object_key      text NOT NULL,
  content_type    text NOT NULL,
  size_bytes      bigint NOT NULL CHECK (size_bytes > 0),
  sha256          text NOT NULL,
  encryption      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_session ON recordings (session_id, created_at);

-- Retention: the only way rows leave the append-only telemetry table. Deletes telemetry events
-- (and their turns) received before `cutoff`, of one tenant or of all (NULL), inside the caller's
-- transaction, and returns how many telemetry events went.
-- Run as `SELECT purge_telemetry(now() - interval '365 days')`.
CREATE FUNCTION purge_telemetry(cutoff timestamptz, only_tenant text DEFAULT NULL) RETURNS bigint AS $$
DECLARE
  removed bigint;
BEGIN
  PERFORM set_config('twin.retention', 'on', true);
  DELETE FROM telemetry_events WHERE received_at < cutoff AND (only_tenant IS NULL OR tenant = only_tenant);
  GET DIAGNOSTICS removed = ROW_COUNT;
  DELETE FROM turns t WHERE (only_tenant IS NULL OR t.tenant = only_tenant) AND NOT EXISTS (
    SELECT 1 FROM telemetry_events e WHERE e.session_id = t.session_id AND e.event_id = t.event_id);
  PERFORM set_config('twin.retention', '', true);
  RETURN removed;
END;
$$ LANGUAGE plpgsql;
