"""gateway: tokens, limits, usage, conversation turns

Revision ID: 0004_gateway
Revises: 0003_metric_history
Create Date: 2026-12-01 21:29:06.687273
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_gateway"
down_revision: str | None = "0003_metric_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("backend", sa.String(length=255), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("eval_tokens", sa.Integer(), nullable=False),
        sa.Column("first_chunk_ms", sa.Integer(), nullable=True),
        sa.Column("total_ms", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_requests")),
    )
    with op.batch_alter_table("gateway_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_requests_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_gateway_requests_user_id"), ["user_id"], unique=False)

    op.create_table(
        "gateway_usage_daily",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("eval_tokens", sa.Integer(), nullable=False),
        sa.Column("local_questions", sa.Integer(), nullable=False),
        sa.Column("model_questions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_gateway_usage_daily")),
    )
    op.create_table(
        "gateway_usage_hourly",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("hour", sa.String(length=13), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("eval_tokens", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "hour", name=op.f("pk_gateway_usage_hourly")),
    )
    op.create_table(
        "conversation_turns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("device", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("intents", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("handled", sa.String(length=8), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("eval_tokens", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_conversation_turns_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_turns")),
    )
    with op.batch_alter_table("conversation_turns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversation_turns_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversation_turns_user_id"), ["user_id"], unique=False)

    op.create_table(
        "gateway_limits",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_day", sa.Integer(), nullable=True),
        sa.Column("max_num_ctx", sa.Integer(), nullable=True),
        sa.Column("max_num_predict", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_gateway_limits_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_gateway_limits")),
    )
    op.create_table(
        "gateway_tokens",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name=op.f("fk_gateway_tokens_instance_id_instances"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_gateway_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_gateway_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_gateway_tokens_token_hash")),
    )
    with op.batch_alter_table("gateway_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_tokens_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gateway_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_tokens_user_id"))

    op.drop_table("gateway_tokens")
    op.drop_table("gateway_limits")
    with op.batch_alter_table("conversation_turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_turns_user_id"))
        batch_op.drop_index(batch_op.f("ix_conversation_turns_at"))

    op.drop_table("conversation_turns")
    op.drop_table("gateway_usage_hourly")
    op.drop_table("gateway_usage_daily")
    with op.batch_alter_table("gateway_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_requests_user_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_requests_at"))

    op.drop_table("gateway_requests")
