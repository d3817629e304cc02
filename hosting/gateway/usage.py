"""Metering and the conversation log, in the database.

Every model request through the gateway becomes a raw row (`gateway_requests`, kept 7 days) and is added to
the tenant's hourly and daily rollups (kept 31 days and a year). Every turn the household's HA reports
(`POST /gateway/v1/turns`, local or model) becomes a `conversation_turns` row, the household's own log,
kept `conversation_retention_days` (default 30). Writes leave the request path: the gateway hands records
over and a background task writes them in batches. A tool call's arguments that look like a secret (an
alarm code, a PIN) are never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting import events
from hosting.db.models import (
    ConversationTurn,
    GatewayRequest,
    GatewayUsageDaily,
    GatewayUsageHourly,
    User,
)
from hosting.gateway.service import RequestRecord
from hosting.gateway.tokens import Tenant

_LOGGER = logging.getLogger(__name__)

RAW_RETENTION = timedelta(days=7)
HOURLY_RETENTION = timedelta(days=31)
DAILY_RETENTION = timedelta(days=366)
_FLUSH_SECONDS = 1.0
_PRUNE_SECONDS = 3600.0
_SECRET_ARGUMENTS = ("code", "pin", "password", "passcode", "secret", "token", "key")


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def scrub_arguments(arguments: Any) -> Any:
    """Tool-call arguments with anything secret-looking replaced (the log must never hold a code)."""
    if isinstance(arguments, dict):
        return {
            key: "***" if any(word in str(key).lower() for word in _SECRET_ARGUMENTS) else scrub_arguments(value)
            for key, value in arguments.items()
        }
    if isinstance(arguments, list):
        return [scrub_arguments(item) for item in arguments]
    return arguments


async def _add_up(session: AsyncSession, model: type[Any], keys: dict[str, str], counts: dict[str, int]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding `counts` (PostgreSQL and SQLite both have it)."""
    table = _table(model)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(**keys, **counts)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: table.c[name] + statement.excluded[name] for name in counts}
    )
    await session.execute(statement)


class UsageStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], conversation_retention_days: int = 30) -> None:
        self.sessions = sessions
        self.conversation_retention = timedelta(days=conversation_retention_days)
        self._pending: list[tuple[datetime, RequestRecord]] = []
        self._wake = asyncio.Event()
        self.events: events.EventBus | None = None  # the operators' LLM latency/tokens history (hosting.history)
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def context(self, _app: object) -> AsyncIterator[None]:
        self._task = asyncio.create_task(self._loop(), name="gateway-usage")
        yield
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.flush()

    async def _loop(self) -> None:
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FLUSH_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                if loop.time() - last_prune > _PRUNE_SECONDS:
                    await self.prune()
                    last_prune = loop.time()
            except Exception:  # the database may be away a moment: keep the records, try again
                _LOGGER.exception("gateway usage: writing failed; retrying")
                await asyncio.sleep(5)

    # ---- writing ---------------------------------------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        """Queue one finished request (called by the gateway; never blocks)."""
        self._pending.append((datetime.now(UTC), record))
        if self.events is not None and record.endpoint == "chat" and record.outcome == "ok":
            figures = {"latency_ms": record.total_ms, "prompt_tokens": record.prompt_tokens}
            self.events.publish(events.LLM, figures | {"eval_tokens": record.eval_tokens})
        if len(self._pending) >= 200:
            self._wake.set()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            async with self.sessions() as session, session.begin():
                for at, record in batch:
                    session.add(
                        GatewayRequest(
                            at=at, user_id=record.user_id, instance_id=record.instance_id, endpoint=record.endpoint,
                            model=record.model[:255], backend=record.backend[:255], status=record.status,
                            outcome=record.outcome, prompt_tokens=record.prompt_tokens,
                            eval_tokens=record.eval_tokens, first_chunk_ms=record.first_chunk_ms,
                            total_ms=record.total_ms, request_id=record.request_id[:64],
                        )
                    )  # fmt: skip
                    counts = {
                        "requests": 1,
                        "errors": 0 if record.outcome == "ok" else 1,
                        "prompt_tokens": record.prompt_tokens,
                        "eval_tokens": record.eval_tokens,
                    }
                    await _add_up(
                        session, GatewayUsageHourly, {"user_id": record.user_id, "hour": at.strftime("%Y-%m-%dT%H")},
                        counts,
                    )  # fmt: skip
                    await _add_up(
                        session, GatewayUsageDaily, {"user_id": record.user_id, "day": at.strftime("%Y-%m-%d")},
                        counts | {"local_questions": 0, "model_questions": 0},
                    )  # fmt: skip
        except BaseException:
            self._pending[:0] = batch  # written next time
            raise

    async def record_turn(self, tenant: Tenant, turn: dict[str, Any]) -> ConversationTurn:
        at = datetime.now(UTC)
        row = ConversationTurn(
            at=at,
            user_id=tenant.user_id,
            instance_id=tenant.instance_id,
            device=turn.get("device") or "",
            text=turn["text"],
            intents=json.dumps(
                [{"name": i["name"], "arguments": scrub_arguments(i.get("arguments", {}))} for i in turn["intents"]],
                ensure_ascii=False,
            ),
            result=turn.get("result") or "",
            status=turn["status"],
            handled=turn["handled"],
            latency_ms=turn.get("latency_ms") or 0,
            prompt_tokens=turn.get("prompt_tokens") or 0,
            eval_tokens=turn.get("eval_tokens") or 0,
            request_id=turn.get("request_id") or "",
        )
        async with self.sessions() as session, session.begin():
            session.add(row)
            question = "local_questions" if row.handled == "local" else "model_questions"
            zero = {"requests": 0, "errors": 0, "prompt_tokens": 0, "eval_tokens": 0}
            await _add_up(
                session, GatewayUsageDaily, {"user_id": tenant.user_id, "day": at.strftime("%Y-%m-%d")},
                zero | {"local_questions": 0, "model_questions": 0} | {question: 1},
            )  # fmt: skip
        return row

    async def prune(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            await session.execute(delete(GatewayRequest).where(GatewayRequest.at < now - RAW_RETENTION))
            hour = (now - HOURLY_RETENTION).strftime("%Y-%m-%dT%H")
            await session.execute(delete(GatewayUsageHourly).where(GatewayUsageHourly.hour < hour))
            day = (now - DAILY_RETENTION).strftime("%Y-%m-%d")
            await session.execute(delete(GatewayUsageDaily).where(GatewayUsageDaily.day < day))
            await session.execute(
                delete(ConversationTurn).where(ConversationTurn.at < now - self.conversation_retention)
            )

    # ---- reading ---------------------------------------------------------------------------------------

    async def tokens_today(self) -> dict[str, int]:
        """Each tenant's tokens so far today (to seed the daily limit after a restart)."""
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        async with self.sessions() as session:
            rows = await session.execute(
                select(GatewayUsageDaily.user_id, GatewayUsageDaily.prompt_tokens + GatewayUsageDaily.eval_tokens)
                .where(GatewayUsageDaily.day == today)
            )  # fmt: skip
            return {user_id: int(tokens) for user_id, tokens in rows}

    async def month_of(self, user_id: str, month: str) -> dict[str, Any]:
        async with self.sessions() as session:
            days = list(
                await session.scalars(
                    select(GatewayUsageDaily)
                    .where(GatewayUsageDaily.user_id == user_id, GatewayUsageDaily.day.startswith(month))
                    .order_by(GatewayUsageDaily.day)
                )
            )
        return {
            "month": month,
            "questions": {"local": sum(d.local_questions for d in days), "model": sum(d.model_questions for d in days)},
            "model_requests": sum(d.requests for d in days),
            "errors": sum(d.errors for d in days),
            "prompt_tokens": sum(d.prompt_tokens for d in days),
            "eval_tokens": sum(d.eval_tokens for d in days),
            "daily": [
                {"day": d.day, "requests": d.requests, "prompt_tokens": d.prompt_tokens, "eval_tokens": d.eval_tokens,
                 "questions": {"local": d.local_questions, "model": d.model_questions}}
                for d in days
            ],
        }  # fmt: skip

    async def operator_month(self, month: str) -> dict[str, Any]:
        """Figures by tenant (the month's daily rollups) and by back-end (the raw week): never any text."""
        daily = GatewayUsageDaily
        async with self.sessions() as session:
            tenants = await session.execute(
                select(
                    daily.user_id, User.email, func.sum(daily.requests), func.sum(daily.errors),
                    func.sum(daily.prompt_tokens), func.sum(daily.eval_tokens), func.sum(daily.local_questions),
                    func.sum(daily.model_questions),
                )
                .outerjoin(User, User.id == daily.user_id)
                .where(daily.day.startswith(month))
                .group_by(daily.user_id, User.email)
                .order_by(func.sum(daily.prompt_tokens + daily.eval_tokens).desc())
            )  # fmt: skip
            since = datetime.now(UTC) - RAW_RETENTION
            raw = GatewayRequest
            backends = await session.execute(
                select(
                    raw.backend, func.count(), func.sum(raw.prompt_tokens), func.sum(raw.eval_tokens),
                    func.avg(raw.first_chunk_ms), func.avg(raw.total_ms),
                    func.sum(case((raw.outcome != "ok", 1), else_=0)),
                )
                .where(raw.at >= since, raw.backend != "")
                .group_by(raw.backend)
                .order_by(raw.backend)
            )  # fmt: skip
            tenant_rows = [
                {"user_id": u, "email": e or "", "model_requests": int(r or 0), "errors": int(er or 0),
                 "prompt_tokens": int(p or 0), "eval_tokens": int(v or 0),
                 "questions": {"local": int(lq or 0), "model": int(mq or 0)}}
                for u, e, r, er, p, v, lq, mq in tenants
            ]  # fmt: skip
            backend_rows = [
                {"url": url, "requests": int(n), "prompt_tokens": int(p or 0), "eval_tokens": int(v or 0),
                 "first_chunk_ms_avg": None if f is None else round(float(f)), "total_ms_avg": round(float(t or 0)),
                 "errors": int(er or 0)}
                for url, n, p, v, f, t, er in backends
            ]  # fmt: skip
        return {"month": month, "tenants": tenant_rows, "backends": backend_rows, "backends_window_days": 7}

    async def conversations(self, user_id: str, limit: int, offset: int) -> dict[str, Any]:
        async with self.sessions() as session:
            total = await session.scalar(
                select(func.count()).select_from(ConversationTurn).where(ConversationTurn.user_id == user_id)
            )
            rows = await session.scalars(
                select(ConversationTurn)
                .where(ConversationTurn.user_id == user_id)
                .order_by(ConversationTurn.at.desc(), ConversationTurn.id)
                .limit(limit)
                .offset(offset)
            )
            return {"items": [turn_view(row) for row in rows], "total": total or 0}

    async def delete_conversations(self, user_id: str, turn_id: str | None = None) -> int:
        async with self.sessions() as session, session.begin():
            statement = delete(ConversationTurn).where(ConversationTurn.user_id == user_id)
            if turn_id is not None:
                statement = statement.where(ConversationTurn.id == turn_id)
            result = await session.execute(statement)
            return int(getattr(result, "rowcount", 0) or 0)


def turn_view(row: ConversationTurn) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": row.at.isoformat(),
        "device": row.device,
        "text": row.text,
        "intents": json.loads(row.intents),
        "result": row.result,
        "status": row.status,
        "handled": row.handled,
        "latency_ms": row.latency_ms,
        "prompt_tokens": row.prompt_tokens,
        "eval_tokens": row.eval_tokens,
        "request_id": row.request_id,
    }
