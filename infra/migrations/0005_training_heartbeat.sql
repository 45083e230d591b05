-- How often the worker running a training job promises a heartbeat. A job counts as abandoned only
-- when its heartbeat is older than both the sweeper's TRAINING_STALE_AFTER_S and three of these
-- intervals, so workers configured differently (a test worker, a CLI run) never take over each
-- other's live jobs.
ALTER TABLE training_jobs ADD COLUMN heartbeat_every_s double precision;
