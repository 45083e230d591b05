-- Foundation schema. Every row is tenant-scoped. Append-only tables refuse UPDATE/DELETE
-- except inside a retention job, which sets `twin.retention = on` for its transaction.

CREATE OR REPLACE FUNCTION forbid_mutation() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' AND coalesce(current_setting('twin.retention', true), '') = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% on %.% is not allowed: the table is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TABLE tenants (
  tenant          text PRIMARY KEY,
  name            text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE interviewers (
  tenant          text NOT NULL REFERENCES tenants(tenant),
  interviewer_id  text NOT NULL,
  display_name    text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, interviewer_id)
);

CREATE TABLE sessions (
  session_id        text PRIMARY KEY,
  tenant            text NOT NULL,
  interviewer_id    text NOT NULL,
  candidate_ref     text,
  role              text,
  seniority         text,
  domain            text,
  consent_recording boolean NOT NULL DEFAULT false,
  consent_training  boolean NOT NULL DEFAULT false,
  video_url         text,
  status            text NOT NULL DEFAULT 'active',
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_tenant_interviewer ON sessions (tenant, interviewer_id);

-- The "zeroed telemetry record" that the initialise call creates.
CREATE TABLE telemetry_sessions (
  session_id   text PRIMARY KEY,
  tenant       text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE telemetry_events (
  tenant         text NOT NULL,
  session_id     text NOT NULL,
  event_id       text NOT NULL,
  type           text NOT NULL,
  ts             timestamptz NOT NULL,
  source         text,
  payload        jsonb NOT NULL,
  received_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, event_id)          -- the dedupe key: replays insert nothing
);
CREATE INDEX telemetry_events_session_ts ON telemetry_events (session_id, ts);
CREATE INDEX telemetry_events_type ON telemetry_events (type);
CREATE INDEX telemetry_events_tenant_ts ON telemetry_events (tenant, ts);
CREATE TRIGGER telemetry_events_append_only BEFORE UPDATE OR DELETE ON telemetry_events
  FOR EACH ROW EXECUTE FUNCTION forbid_mutation();

CREATE TABLE turns (
  tenant          text NOT NULL,
  session_id      text NOT NULL,
  event_id        text NOT NULL,
  role            text NOT NULL,
  text            text NOT NULL,
  ts              timestamptz NOT NULL,
  tokens          integer,
  latency_ms      double precision,
  PRIMARY KEY (session_id, event_id)
);
CREATE INDEX turns_session_ts ON turns (session_id, ts);

CREATE TABLE training_jobs (
  job_id          text PRIMARY KEY,
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL,
  dataset_ref     text NOT NULL,
  options         jsonb NOT NULL DEFAULT '{}'::jsonb,
  status          text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  progress        double precision NOT NULL DEFAULT 0,
  message         text,
  version         integer,
  worker          text,
  heartbeat_at    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX training_jobs_interviewer ON training_jobs (tenant, interviewer_id);

-- Versioned learned artefacts; the respond path reads the row marked active.
CREATE TABLE interviewer_profiles (
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL,
  version         integer NOT NULL,
  style_profile   jsonb NOT NULL,
  policy_stats    jsonb NOT NULL,
  artefacts       jsonb NOT NULL DEFAULT '{}'::jsonb,
  active          boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, interviewer_id, version)
);
CREATE UNIQUE INDEX interviewer_profiles_one_active ON interviewer_profiles (tenant, interviewer_id) WHERE active;

CREATE TABLE eval_runs (
  run_id          text PRIMARY KEY,
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL,
  profile_version integer,
  scores          jsonb NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX eval_runs_interviewer ON eval_runs (tenant, interviewer_id, created_at);

CREATE TABLE eval_samples (
  sample_id       text PRIMARY KEY,
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL,
  session_id      text NOT NULL,
  correlation_id  text NOT NULL,
  context         jsonb NOT NULL,
  twin_text       text NOT NULL,
  real_text       text,
  scores          jsonb,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
  audit_id        text PRIMARY KEY,
  tenant          text NOT NULL,
  actor           text NOT NULL,
  action          text NOT NULL,
  resource_type   text NOT NULL,
  resource_id     text NOT NULL,
  outcome         text NOT NULL,
  detail          jsonb,
  trace_id        text,
  ts              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_ts ON audit_log (tenant, ts);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION forbid_mutation();
