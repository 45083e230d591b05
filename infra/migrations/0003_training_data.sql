-- Training data (issue 5): imported transcripts, per-interviewer chronological splits, and the
-- bookkeeping a resumable training job needs.
--
-- datasets / dataset_sessions: transcripts imported by `twin import` (already PII-redacted), or
-- copied from the live telemetry tables for `live:<tenant>`. One row per session; a session is
-- written in one transaction, so a bad line never leaves half a session behind.
-- interviewer_splits: the train/val/test assignment of every session of an interviewer, fixed the
-- first time the interviewer is trained, so every later job sees the same split.

CREATE TABLE datasets (
  tenant          text NOT NULL,
  dataset_ref     text NOT NULL,
  name            text NOT NULL,
  kind            text NOT NULL DEFAULT 'import' CHECK (kind IN ('import', 'live')),
  source          text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, dataset_ref)
);

CREATE TABLE dataset_sessions (
  tenant          text NOT NULL,
  dataset_ref     text NOT NULL,
  session_id      text NOT NULL,
  interviewer_id  text NOT NULL,
  started_at      timestamptz,
  seq             bigint NOT NULL,            -- order in the source: the chronology when dates are missing
  source          text,
  turns           jsonb NOT NULL,             -- [{role, text, ts}], redacted
  n_turns         integer NOT NULL,
  n_interviewer_turns integer NOT NULL,
  redactions      jsonb NOT NULL DEFAULT '{}'::jsonb,   -- entity type -> count
  content_sha256  text NOT NULL,              -- of the source session: re-imports of the same line are no-ops
  imported_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, dataset_ref, session_id),
  FOREIGN KEY (tenant, dataset_ref) REFERENCES datasets (tenant, dataset_ref) ON DELETE CASCADE
);
CREATE INDEX dataset_sessions_interviewer ON dataset_sessions (tenant, dataset_ref, interviewer_id, seq);

CREATE TABLE interviewer_splits (
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL,
  session_id      text NOT NULL,
  split           text NOT NULL CHECK (split IN ('train', 'val', 'test')),
  position        integer NOT NULL,           -- chronological rank when assigned
  dataset_ref     text NOT NULL,
  assigned_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, interviewer_id, session_id)
);

-- Resuming a job after its worker died: how often it was started, and what it produced.
ALTER TABLE training_jobs ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE training_jobs ADD COLUMN started_at timestamptz;
ALTER TABLE training_jobs ADD COLUMN finished_at timestamptz;
ALTER TABLE training_jobs ADD COLUMN result jsonb;
CREATE INDEX training_jobs_running ON training_jobs (status, heartbeat_at) WHERE status = 'running';
