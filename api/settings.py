"""The one typed settings object. Nothing else in Ledgerline reads os.environ."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "ledgerline-local-development-secret-change-me"


class Settings(BaseSettings):
    """Every setting, its environment variable (the upper-case name) and its default."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Where the API listens.
    host: str = Field("127.0.0.1", description="Interface the API binds to.")
    port: int = Field(8000, description="Port the API listens on.")

    # Services. Unset → the embedded PostgreSQL / Redis under DATA_DIR are used.
    database_url: str | None = Field(None, description="postgresql+asyncpg://… of a real server.")
    redis_url: str | None = Field(None, description="redis://… of a real server.")
    data_dir: Path = Field(Path(".ledgerline"), description="Where embedded servers keep their data.")
    db_pool_size: int = Field(20, description="Connections kept per API process (as many again may open under bursts).")

    # Auth.
    jwt_secret: str = Field(DEV_JWT_SECRET, description="HS256 secret for locally issued tokens.")
    jwt_issuer: str = Field("ledgerline", description="Expected `iss` claim.")
    jwt_audience: str = Field("ledgerline-api", description="Expected `aud` claim.")
    jwks_url: str | None = Field(None, description="JWKS of an identity provider (RS256/ES256).")
    jwks_cache_seconds: int = Field(300, description="How long a fetched JWKS is reused.")

    # Stripe.
    stripe_secret_key: str | None = Field(None, description="Unset → the local Stripe emulator.")
    stripe_api_base: str | None = Field(None, description="A Stripe-API-compatible base URL.")
    stripe_webhook_secret: str = Field("whsec_ledgerline_local", description="Webhook signing secret.")
    stripe_webhook_tolerance_seconds: int = Field(300, description="Oldest webhook signature accepted.")
    webhook_max_attempts: int = Field(8, description="Processing attempts of a webhook event before FAILED.")
    webhook_retry_base_seconds: float = Field(30.0, description="First retry delay; doubles, capped at 1 h.")
    stripe_max_network_retries: int = Field(2, description="Retries the Stripe client makes.")
    stripe_timeout_seconds: float = Field(20.0, description="Per-request Stripe timeout.")

    # GraphQL limits.
    max_query_depth: int = Field(12, description="Deepest selection allowed.")
    max_query_tokens: int = Field(4000, description="Most tokens in one document.")
    max_aliases: int = Field(30, description="Most aliases in one document.")
    max_page_size: int = Field(100, description="Cap on `first` for every connection.")
    default_page_size: int = Field(20, description="`first` when a client gives none.")

    usage_max_batch: int = Field(10_000, description="Most events in one `POST /v1/usage-events` request.")
    health_snapshot_days: int = Field(
        400,
        ge=31,
        description="Days of daily health snapshots kept; the nightly job deletes older ones (trends need 31).",
    )

    api_key_rotation_grace_hours: int = Field(24, description="How long a rotated API key keeps working.")

    # Policies.
    support_refund_limit: Decimal = Field(Decimal("100.00"), description="Support's cap per refund/credit.")

    # Email (dunning, trial endings).
    smtp_url: str | None = Field(
        None, description="smtp://[user:password@]host:port (or smtps://, smtp+starttls://); unset → no sending."
    )
    email_from: str = Field("Ledgerline Billing <billing@ledgerline.local>", description="From of customer emails.")

    # Demo data.
    seed_customers: int = Field(200, description="Customers `make run` seeds into an empty database.")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field("json", description="Log line format.")

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
