"""The hosting service's tables (SQLAlchemy 2 declarative). Changing them needs an Alembic migration in
`hosting/db/migrations/versions/` (a test compares the migrated schema with these models)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, MetaData, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

USER_ROLE = "user"
OPERATOR_ROLE = "operator"
ROLES = (USER_ROLE, OPERATOR_ROLE)

INSTANCE_STATUSES = ("provisioning", "ready", "error", "stopped", "deleting")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone; it gets naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named constraints, so migrations can refer to them on both SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}  # noqa: RUF012


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # always lowercased
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=USER_ROLE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Every token from one login shares a family; reuse of a spent token revokes the whole family.
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # UNIQUE is what makes port allocation race-free: insert, retry with another port on conflict.
    port: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16), default="provisioning")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(255), default="")
    image: Mapped[str] = mapped_column(String(255), default="")
    provision_state: Mapped[str] = mapped_column(Text, default="{}")  # JSON of completed provisioning steps
    ha_token_encrypted: Mapped[str | None] = mapped_column(Text, default=None)  # Fernet
    owner_password_encrypted: Mapped[str | None] = mapped_column(Text, default=None)  # Fernet, erased when onboarded
    health: Mapped[str] = mapped_column(String(32), default="unknown")
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    next_restart_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # No foreign key: the trail outlives the accounts it mentions.
    actor_user_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(320), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON, never a secret (see hosting.audit)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    # The device's relay endpoint port (hosting.relay); UNIQUE makes its allocation race-free, and it is kept
    # so the owner's HA finds the device at the same place after a restart.
    relay_port: Mapped[int | None] = mapped_column(Integer, unique=True, default=None)
    # The Wyoming config entry made in the owner's HA for this device (removed again on revocation).
    ha_entry_id: Mapped[str | None] = mapped_column(String(64), default=None)


# ---- the gateway to the shared model and speech servers (hosting.gateway) ----------------------------------


class GatewayToken(Base):
    """The instance's key to the gateway (its HA's agent sends it as a Bearer token)."""

    __tablename__ = "gateway_tokens"

    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256, for the lookup
    token_encrypted: Mapped[str] = mapped_column(Text)  # Fernet: provisioning hands it to HA again
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GatewayLimits(Base):
    """The operator's per-account overrides of the gateway's limits (NULL: the default)."""

    __tablename__ = "gateway_limits"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    concurrency: Mapped[int | None] = mapped_column(Integer, default=None)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    tokens_per_day: Mapped[int | None] = mapped_column(Integer, default=None)
    max_num_ctx: Mapped[int | None] = mapped_column(Integer, default=None)
    max_num_predict: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GatewayRequest(Base):
    """One model request through the gateway (kept 7 days; the rollups keep the figures longer)."""

    __tablename__ = "gateway_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)  # no foreign key: usage outlives accounts
    instance_id: Mapped[str] = mapped_column(String(36))
    endpoint: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(255), default="")
    backend: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32), default="ok")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    eval_tokens: Mapped[int] = mapped_column(Integer, default=0)
    first_chunk_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    total_ms: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str] = mapped_column(String(64), default="")


class _UsageCounts:
    """A tenant's model requests in one period (hosting.gateway.usage adds to them)."""

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    eval_tokens: Mapped[int] = mapped_column(Integer, default=0)


class GatewayUsageHourly(_UsageCounts, Base):
    __tablename__ = "gateway_usage_hourly"

    hour: Mapped[str] = mapped_column(String(13), primary_key=True)  # YYYY-MM-DDTHH, UTC


class GatewayUsageDaily(_UsageCounts, Base):
    __tablename__ = "gateway_usage_daily"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    # The household's questions as its HA reported them (hosting.gateway.turns), local and model.
    local_questions: Mapped[int] = mapped_column(Integer, default=0)
    model_questions: Mapped[int] = mapped_column(Integer, default=0)


class ConversationTurn(Base):
    """One voice/text turn as the household's HA reported it: the household's own audit log."""

    __tablename__ = "conversation_turns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    device: Mapped[str] = mapped_column(String(255), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    intents: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [{"name", "arguments"}]
    result: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="ok")
    handled: Mapped[str] = mapped_column(String(8), default="model")  # "local" | "model"
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    eval_tokens: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str] = mapped_column(String(64), default="")


class MetricPoint(Base):
    """One bucket of a metrics-history series at one resolution (hosting.history): the sum and count of
    the samples in it, so a bucket is their average (gauges) or their sum (counters)."""

    __tablename__ = "metric_points"

    series: Mapped[str] = mapped_column(String(64), primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)  # seconds per bucket; 0: raw samples
    bucket: Mapped[datetime] = mapped_column(primary_key=True)  # the bucket's start
    total: Mapped[float]
    count: Mapped[int] = mapped_column(Integer)
