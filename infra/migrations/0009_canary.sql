-- Canary deployments (issue 8): a share of an interviewer's traffic goes to a candidate profile
-- version while the active one (the baseline) answers the rest; the canary controller compares
-- their live eval samples and promotes or rolls back. processors/twin/canary.py owns this table.
--
-- canary_deployments: one row per canary; at most one running per interviewer. `share` is the
-- candidate's share of sessions (0 after a rollback); `thresholds` the decision rule (scoreMargin,
-- safetyMargin, promoteSamples, autoPromote); `result` the last evaluation (per-arm counts, mean
-- scores, safety-intervention rates). Deleting a profile version deletes its canaries.
-- eval_samples.profile_version: the profile version that produced a live sample (NULL before this
-- migration and for offline runs, which have eval_runs.profile_version).

CREATE TABLE canary_deployments (
  canary_id          text PRIMARY KEY,
  tenant             text NOT NULL,
  interviewer_id     text NOT NULL,
  candidate_version  integer NOT NULL,
  baseline_version   integer NOT NULL,
  share              double precision NOT NULL CHECK (share >= 0 AND share <= 1),
  status             text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'promoted', 'rolled_back', 'aborted')),
  reason             text,
  min_samples        integer NOT NULL CHECK (min_samples >= 1),
  thresholds         jsonb NOT NULL DEFAULT '{}'::jsonb,
  result             jsonb,
  started_by         text NOT NULL,
  decided_by         text,
  started_at         timestamptz NOT NULL DEFAULT now(),
  evaluated_at       timestamptz,
  decided_at         timestamptz,
  CHECK (candidate_version <> baseline_version),
  FOREIGN KEY (tenant, interviewer_id, candidate_version)
    REFERENCES interviewer_profiles (tenant, interviewer_id, version) ON DELETE CASCADE,
  FOREIGN KEY (tenant, interviewer_id, baseline_version)
    REFERENCES interviewer_profiles (tenant, interviewer_id, version) ON DELETE CASCADE
);
CREATE UNIQUE INDEX canary_deployments_one_running ON canary_deployments (tenant, interviewer_id)
  WHERE status = 'running';
CREATE INDEX canary_deployments_interviewer ON canary_deployments (tenant, interviewer_id, started_at);

ALTER TABLE eval_samples ADD COLUMN profile_version integer;
CREATE INDEX eval_samples_profile_version ON eval_samples (tenant, interviewer_id, profile_version, created_at)
  WHERE profile_version IS NOT NULL;
