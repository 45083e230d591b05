-- Evaluation (issue 6): offline runs write their per-turn samples next to the live ones, the sampler
-- marks what it has published, and blinded pairwise ratings are stored per rater.

ALTER TABLE eval_samples ADD COLUMN run_id text;                 -- offline run; NULL for live samples
ALTER TABLE eval_samples ADD COLUMN source text NOT NULL DEFAULT 'live'
  CHECK (source IN ('live', 'offline'));
ALTER TABLE eval_samples ADD COLUMN published_at timestamptz;   -- when the sampler sent it to eval.samples
CREATE INDEX eval_samples_interviewer ON eval_samples (tenant, interviewer_id, created_at);
CREATE INDEX eval_samples_run ON eval_samples (run_id);

-- One blinded comparison shown to one rater: a turn (context + two replies) or a session (two
-- versions of several turns). `real_option` says which side was real; the rater never sees it.
CREATE TABLE eval_ratings (
  rating_id       text PRIMARY KEY,
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL,
  rater           text NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('turn', 'session')),
  run_id          text,
  session_id      text NOT NULL,
  sample_ids      text[] NOT NULL,
  real_option     text NOT NULL CHECK (real_option IN ('A', 'B')),
  choice          text CHECK (choice IN ('A', 'B')),
  correct         boolean,
  created_at      timestamptz NOT NULL DEFAULT now(),
  answered_at     timestamptz
);
CREATE INDEX eval_ratings_interviewer ON eval_ratings (tenant, interviewer_id, answered_at);
CREATE INDEX eval_ratings_rater ON eval_ratings (tenant, rater);
