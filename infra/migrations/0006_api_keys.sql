-- Authentication (issue 7): per-tenant API keys. Only a SHA-256 of the secret half is stored; the
-- token is shown once when created. `interviewers` NULL means every interviewer of the tenant.
CREATE TABLE api_keys (
  key_id          text PRIMARY KEY,
  tenant          text NOT NULL,
  name            text NOT NULL,
  secret_sha256   text NOT NULL,
  scopes          text[] NOT NULL,
  interviewers    text[],
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz,
  revoked_at      timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);

CREATE INDEX audit_log_tenant_actor ON audit_log (tenant, actor, ts);
CREATE INDEX audit_log_resource ON audit_log (tenant, resource_type, resource_id);
