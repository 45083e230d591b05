-- Periodic refresh of an interviewer's twin (processors/twin/refresh.py owns this table): when enough
-- new consented live sessions have accrued, or enough days have passed, the refresh controller
-- trains a new version (not activated) and starts a canary of it; the canary controller promotes or
-- rolls it back. One row per refresh, from its trigger to the canary's decision.
--
-- status: training (job queued or running) -> canary (running) -> promoted | rolled_back | aborted;
-- or failed (the job failed, or the canary could not start; `message` says why).

CREATE TABLE refresh_runs (
  run_id             text PRIMARY KEY,
  tenant             text NOT NULL,
  interviewer_id     text NOT NULL,
  reason             text NOT NULL,
  new_sessions       integer NOT NULL,
  baseline_version   integer NOT NULL,
  job_id             text NOT NULL REFERENCES training_jobs (job_id) ON DELETE CASCADE,
  candidate_version  integer,
  canary_id          text,
  status             text NOT NULL DEFAULT 'training'
                     CHECK (status IN ('training', 'canary', 'promoted', 'rolled_back', 'aborted', 'failed')),
  message            text,
  started_by         text NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
-- At most one refresh in flight per interviewer (two controllers racing: the loser gets UniqueViolation).
CREATE UNIQUE INDEX refresh_runs_one_open ON refresh_runs (tenant, interviewer_id)
  WHERE status IN ('training', 'canary');
CREATE INDEX refresh_runs_interviewer ON refresh_runs (tenant, interviewer_id, created_at);
