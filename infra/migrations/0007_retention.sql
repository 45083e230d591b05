-- Retention and erasure (issue 7). The logic is in sinks/retention.py.
--
-- tenant_retention: a tenant's own retention, in days, per kind of data (recordings, telemetry,
-- vectors, eval). No row = the RETENTION_<KIND>_DAYS default; days = 0 keeps that kind forever.
-- erased_sessions: one tombstone per erased session. Every sink checks it before writing, so events
-- of an erased session still in flight in Kafka (or replayed from offset 0) re-create nothing; the
-- sweep re-erases leftovers of recent tombstones (a write that raced the erasure).
-- retention_runs: what each retention run did, and when (workers use it to take turns).

CREATE TABLE tenant_retention (
  tenant          text NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('recordings', 'telemetry', 'vectors', 'eval')),
  days            integer NOT NULL CHECK (days >= 0),
  updated_by      text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, kind)
);

CREATE TABLE erased_sessions (
  tenant          text NOT NULL,
  session_id      text NOT NULL,
  interviewer_id  text,
  erased_by       text NOT NULL,
  erased_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, session_id)
);
CREATE INDEX erased_sessions_recent ON erased_sessions (erased_at);

CREATE TABLE retention_runs (
  run_id          text PRIMARY KEY,
  actor           text NOT NULL,
  tenant          text,                       -- NULL: every tenant
  dry_run         boolean NOT NULL,
  started_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  counts          jsonb,
  errors          jsonb
);
CREATE INDEX retention_runs_started ON retention_runs (started_at);

-- What retention and erasure select by.
CREATE INDEX telemetry_events_tenant_received ON telemetry_events (tenant, received_at);
CREATE INDEX recordings_tenant_created ON recordings (tenant, created_at);
CREATE INDEX eval_samples_session ON eval_samples (tenant, session_id);
CREATE INDEX eval_ratings_session ON eval_ratings (tenant, session_id);
CREATE INDEX eval_ratings_created ON eval_ratings (tenant, created_at);
CREATE INDEX eval_runs_created ON eval_runs (tenant, created_at);
CREATE INDEX dataset_sessions_session ON dataset_sessions (tenant, session_id);
CREATE INDEX interviewer_splits_session ON interviewer_splits (tenant, session_id);
