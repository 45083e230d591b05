-- Configuration, feature flags and consent (issue 7).
--
-- twin_config: one configuration layer per tenant (interviewer_id = '') and per interviewer. Each
-- row holds only what that layer sets (absent = inherit); processors/twin/config.py validates it and
-- merges defaults <- trained version <- tenant <- interviewer. `version` grows by one on every write
-- (optimistic concurrency: If-Match), so running workers and the Redis cache notice changes.
-- twin_config_history: every write, append-only (who, when, the layer before and after).
-- datasets.consent_*: who attested, when imported, that the sessions of an imported dataset may be
-- used for training. Live sessions carry their own consent (sessions.consent_training).

CREATE TABLE twin_config (
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL DEFAULT '',   -- '' = the tenant layer
  config          jsonb NOT NULL DEFAULT '{}'::jsonb,
  version         bigint NOT NULL DEFAULT 1,
  updated_by      text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, interviewer_id)
);

CREATE TABLE twin_config_history (
  tenant          text NOT NULL,
  interviewer_id  text NOT NULL,
  version         bigint NOT NULL,             -- 0 = the layer was removed
  config          jsonb,
  previous        jsonb,
  changed_by      text NOT NULL,
  changed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX twin_config_history_layer ON twin_config_history (tenant, interviewer_id, changed_at);
CREATE TRIGGER twin_config_history_append_only BEFORE UPDATE OR DELETE ON twin_config_history
  FOR EACH ROW EXECUTE FUNCTION forbid_mutation();

ALTER TABLE datasets ADD COLUMN consent_attested_by text;
ALTER TABLE datasets ADD COLUMN consent_attested_at timestamptz;
ALTER TABLE datasets ADD COLUMN consent_note text;
