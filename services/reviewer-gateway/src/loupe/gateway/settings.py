"""Gateway settings (env prefix ``LOUPE_GATEWAY_``) on top of the deployment-wide ones."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from loupe.gateway.ratelimit import parse_rate_limit
from loupe.gateway.scripts import DEFAULT_SETTLED_RETENTION_S
from loupe.gateway.users import DEFAULT_TOKEN_TTL_DAYS
from loupe.runtime.redis_acls import GATEWAY_REDIS_PREFIX
from loupe.runtime.settings import ServiceSettings

MIN_TOKEN_PEPPER_CHARS = 32
"""A pepper shorter than this is reported at start (``insecure_settings``)."""


class GatewaySettings(ServiceSettings):
    """Everything the reviewer gateway reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_GATEWAY_", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65_535)
    lease_seconds: float = Field(default=600.0, gt=0, le=86_400)
    sweep_interval_s: float = Field(default=1.0, gt=0, le=4)
    """Expired leases are back in their queues within lease + this (+ the sweep): ≤ lease + 5 s."""
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=16_777_216)
    idempotency_ttl_s: int = Field(default=7 * 86_400, ge=60)
    settled_retention_s: int = Field(default=DEFAULT_SETTLED_RETENTION_S, ge=1, le=366 * 86_400)
    """How long Redis keeps a settled item (its tasks, votes, resolved label, history and
    comments) for the item pages, counted from when its last task settled; then every key of the
    item expires and its detail is answered 404 (docs/architecture.md, "Retention")."""
    kafka_timeout_s: float = Field(default=10.0, gt=0, le=120)
    """How long a decision waits for Kafka's acknowledgement before answering 503."""
    kafka_linger_ms: int = Field(default=5, ge=0, le=1_000)
    """Producer batching window: concurrent decisions share one broker round trip."""
    commit_interval_s: float = Field(default=1.0, gt=0, le=60)
    """How often the consumer commits offsets (replays after a crash are idempotent)."""
    stall_timeout_s: float = Field(default=60.0, ge=1.0, le=3_600.0)
    """/healthz fails when the consumer thread has not gone round its loop for this long
    (outside a rebuild, which has its own deadline): stuck in a Kafka or Redis call."""
    otel_telemetry: bool = False
    """FastAPI's OpenTelemetry hooks (tracing/metrics/logs); Prometheus metrics are always on."""
    consumer_group: str = "loupe-gateway"
    redis_prefix: str = Field(default=GATEWAY_REDIS_PREFIX, max_length=64)
    users_file: Path = Path("gateway-users.json")
    """Durable copy of users and token hashes (Redis holds a cache rebuilt from it)."""
    token_pepper: SecretStr = SecretStr("")
    """Server secret mixed into token hashes (HMAC-SHA-256); set it in production."""
    auth_cache_s: float = Field(default=5.0, ge=0, le=300)
    """Token lookups are cached in-process this long: a revocation reaches every replica
    within it."""
    token_ttl_days: int = Field(default=DEFAULT_TOKEN_TTL_DAYS, ge=1, le=3_650)
    """A new token's lifetime, and the longest an admin may give one."""
    token_use_flush_s: float = Field(default=60.0, ge=1, le=3_600)
    """Tokens' last use is written to the users file this often (one write per replica)."""
    rate_limit: str = "30/second"
    """Requests each API token may make, a ``limits`` rate string (``<n>/<period>``, several
    joined by ``;``), counted per token in Redis across replicas; over it: ``429`` with
    ``Retry-After``. Empty: no limit. The default is far above what a person in the UI sends
    (a page, a claim and a decision are a handful of requests) and bounds a runaway script. One
    window: each one costs every request a Redis call (about as much as the token lookup), and a
    second, per-minute one would bound little more."""
    media_origins_refresh_s: float = Field(default=5.0, gt=0, le=300)
    """How often the CSP's media origins are read from the projects' policies (one Redis
    command per period and replica; a changed list reaches the header within this)."""
    csp_max_media_origins: int = Field(default=128, ge=1, le=1_024)
    """At most this many media origins in the CSP (a long header is refused by proxies)."""
    ui_dir: Path | None = None
    """Static UI folder served at ``/`` (default: the packaged ``ui`` folder)."""
    start_consumer: bool = True
    """Run the Kafka consumer (requests, resolutions, conflicts, policy, audit) in-process."""
    workers_log_level: str = "warning"
    rebuild_deadline_s: float = Field(default=900.0, gt=0, le=86_400)
    """A rebuild still unfinished after this is an error: unready (503) and alerting."""
    rebuild_lease_s: float = Field(default=30.0, ge=1, le=3_600)
    """The rebuild lease's time to live; its holder renews it every second while it works."""
    rebuild_retry_s: float = Field(default=30.0, gt=0, le=3_600)
    """How long a failed rebuild waits before the next attempt (it stays unready meanwhile)."""
    rebuild_batch: int = Field(default=5_000, ge=1, le=100_000)
    """Records per rebuild batch: the memory it holds and the Redis writes per round trip."""
    rebuild_scratch_dir: Path | None = None
    """Where the rebuild's temporary history index lives (default: the system temp folder)."""
    open_task_horizon_s: float = Field(default=21 * 86_400, gt=0)
    """The longest a review task stays open; ``review.requests`` and ``review.decisions`` must
    keep records at least this long, else the rebuild refuses to run (docs/architecture.md)."""

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        parse_rate_limit(value)  # ValueError naming the string
        return value.strip()

    @model_validator(mode="after")
    def _linger_fits_the_timeout(self) -> GatewaySettings:
        if self.kafka_linger_ms >= self.kafka_timeout_s * 1000:
            raise ValueError("kafka_linger_ms must be shorter than kafka_timeout_s")
        return self

    def group_id(self) -> str:
        """Consumer group, namespaced by the topic prefix so deployments never share offsets."""
        return f"{self.topic_prefix}{self.consumer_group}"

    def insecure_settings(self) -> list[str]:
        """What in these settings is unfit for production, one sentence each (logged as a
        warning at every start; never a secret's value)."""
        pepper = len(self.token_pepper.get_secret_value())
        if pepper >= MIN_TOKEN_PEPPER_CHARS:
            return []
        state = "empty" if pepper == 0 else f"only {pepper} characters long"
        return [
            f"LOUPE_GATEWAY_TOKEN_PEPPER is {state}: anyone with a copy of the users file or "
            "of Redis can then check token guesses offline; set at least "
            f"{MIN_TOKEN_PEPPER_CHARS} random characters (the same on every replica) before "
            "issuing tokens"
        ]


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """The process-wide settings, read once from the environment."""
    return GatewaySettings()
