"""Settings shared by every service, read from ``BWC_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: R2: the law allows at most 14 days between recording and deletion.
MAX_RETENTION_PERIOD = timedelta(days=14)


def _seconds_or_iso(value: object) -> object:
    """Accept plain seconds ("86400") as well as ISO 8601 durations ("P14D")."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


#: A duration given in seconds or ISO 8601 (``P14D``, ``PT30M``).
Duration = Annotated[timedelta, BeforeValidator(_seconds_or_iso)]


class CommonSettings(BaseSettings):
    """Settings every service reads. Services subclass this to add their own."""

    model_config = SettingsConfigDict(env_prefix="BWC_", extra="ignore")

    environment: Literal["dev", "test", "prod"] = "dev"
    log_level: str = "INFO"

    database_url: str = "postgresql://postgres@127.0.0.1:5432/bwc"
    database_pool_size: int = Field(default=10, ge=1)
    #: Apply the service's migrations at start-up. Off in Kubernetes, where the migrations Job
    #: runs ``bwc migrate`` before a rollout and a service only checks its schema is current.
    database_migrate: bool = True

    kafka_bootstrap: str = "127.0.0.1:9092"
    # The embedded Tansu broker rejects aiokafka's idempotent producer (DESIGN §5); real Kafka
    # supports it, so production turns this on.
    kafka_idempotence: bool = False
    kafka_topic_partitions: int = Field(default=3, ge=1)
    #: Topics the services create get these; an existing topic with less is refused. The
    #: production defaults survive the loss of one of three brokers with acks=all; a single
    #: broker (the embedded stack, compose, tests) sets 1 and 1.
    kafka_replication_factor: int = Field(default=3, ge=1)
    kafka_min_insync_replicas: int = Field(default=2, ge=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_ssl_cafile: str | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None

    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = "bwc-dev-access"
    s3_secret_key: str = "bwc-dev-secret-key"  # noqa: S105 - development default, refused in prod
    s3_region: str = "eu-central-1"
    s3_bucket: str = "recordings"
    #: CA bundle for an ``https://`` S3 endpoint signed by a private CA.
    s3_ca_file: str | None = None

    auth_jwks_url: str = "file://var/dev-issuer/jwks.json"
    auth_issuer: str = "bwc-dev-issuer"
    auth_audience: str = "bwc"
    #: Clock skew allowed between the IdP and this service on ``exp``/``nbf``/``iat``.
    auth_leeway: Duration = timedelta(seconds=30)

    retention_period: Duration = MAX_RETENTION_PERIOD
    clock_skew: Duration = timedelta(minutes=5)

    #: Seconds between SIGTERM and closing the listener: /readyz answers 503 and uploads in
    #: flight stop reading at once, keeping what arrived (``bwc.serve``).
    shutdown_drain: float = Field(default=2.0, ge=0, le=60)
    #: Seconds uvicorn then waits for open requests before cutting them off.
    shutdown_grace: float = Field(default=20.0, ge=1, le=600)

    @field_validator("auth_leeway")
    @classmethod
    def _small_leeway(cls, value: timedelta) -> timedelta:
        # A large leeway would keep expired tokens valid; minutes of skew mean a broken clock.
        if not timedelta(0) <= value <= timedelta(minutes=5):
            raise ValueError("BWC_AUTH_LEEWAY must be between 0 and 5 minutes")
        return value

    @field_validator("retention_period")
    @classmethod
    def _retention_only_downwards(cls, value: timedelta) -> timedelta:
        # R2: configurable downwards only; a longer period would keep data unlawfully.
        if value > MAX_RETENTION_PERIOD:
            raise ValueError(
                f"BWC_RETENTION_PERIOD={value} exceeds the legal maximum of 14 days (R2)"
            )
        if value <= timedelta(0):
            raise ValueError("BWC_RETENTION_PERIOD must be positive")
        return value

    def model_post_init(self, __context: object) -> None:
        # Placeholder secrets are fine on the embedded stack, never in production.
        if self.environment == "prod":
            if self.s3_secret_key == "bwc-dev-secret-key":  # noqa: S105
                raise ValueError("BWC_S3_SECRET_KEY must be set in prod")
            if self.auth_jwks_url.startswith("file:"):
                raise ValueError("BWC_AUTH_JWKS_URL must point at the IdP's JWKS in prod")
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                f"BWC_KAFKA_MIN_INSYNC_REPLICAS={self.kafka_min_insync_replicas} exceeds "
                f"BWC_KAFKA_REPLICATION_FACTOR={self.kafka_replication_factor}: no acks=all "
                "write could succeed")
        if self.kafka_sasl_mechanism and not (self.kafka_sasl_username and
                                              self.kafka_sasl_password):
            raise ValueError("BWC_KAFKA_SASL_MECHANISM needs BWC_KAFKA_SASL_USERNAME and "
                             "BWC_KAFKA_SASL_PASSWORD")
