"""The operators' metrics history, kept in the database at downsampled resolutions.

Every `Settings.history_interval` seconds one sampler reads the gauges (instances by status, devices online)
and adds what the event bus brought since (sign-ups, model requests' latency and tokens), then writes each
value into every resolution's bucket in one transaction:

    raw samples for 1 h, per minute for 24 h, per 5 min for 7 d, per 30 min for 30 d, per hour for 1 y

A bucket holds the sum and the count of its samples (an upsert adds to both), so it is their average for a
gauge and their sum for a counter. Buckets past their resolution's retention are deleted at each write.
`GET /api/operator/history?series=...&range=24h` reads the resolution that fits the range.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import voluptuous as vol
from aiohttp import web
from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting import events
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.db.models import INSTANCE_STATUSES, Instance, MetricPoint

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    seconds: int  # bucket width; 0: every sample as it was taken
    keep: timedelta
    range: str  # the chart range this resolution serves


RESOLUTIONS = (
    Resolution(0, timedelta(hours=1), "1h"),
    Resolution(60, timedelta(hours=24), "24h"),
    Resolution(300, timedelta(days=7), "7d"),
    Resolution(1800, timedelta(days=30), "30d"),
    Resolution(3600, timedelta(days=365), "1y"),
)
RANGES = {r.range: r for r in RESOLUTIONS}

GAUGE, COUNTER = "gauge", "counter"
# Every series there is, and how its buckets read (average of samples, or their sum).
SERIES: dict[str, str] = {
    "signups": COUNTER,
    **{f"instances.{status}": GAUGE for status in INSTANCE_STATUSES},
    "devices.online": GAUGE,
    "llm.requests": COUNTER,
    "llm.latency_ms": GAUGE,
    "llm.tokens": COUNTER,
}

GaugeSource = Callable[[], Awaitable[dict[str, float]]]


def bucket_of(moment: datetime, seconds: int) -> datetime:
    if seconds == 0:
        return moment.replace(microsecond=0)
    epoch = math.floor(moment.timestamp() / seconds) * seconds
    return datetime.fromtimestamp(epoch, UTC)


class MetricsHistory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: events.EventBus, interval: float) -> None:
        self.sessions = sessions
        self.bus = bus
        self.interval = interval
        self.gauges: list[GaugeSource] = [self._instances_by_status]
        self._pending: dict[str, list[float]] = {}  # series -> [total, count] since the last write

    # --- collecting ----------------------------------------------------------------------------------

    def add(self, series: str, value: float) -> None:
        entry = self._pending.setdefault(series, [0.0, 0])
        entry[0] += value
        entry[1] += 1

    def _on_event(self, event: events.Event) -> None:
        if event.kind == events.SIGNUP:
            self.add("signups", 1)
        elif event.kind == events.LLM:
            self.add("llm.requests", 1)
            if isinstance(latency := event.data.get("latency_ms"), int | float):
                self.add("llm.latency_ms", float(latency))
            tokens = sum(v for k in ("prompt_tokens", "eval_tokens") if isinstance(v := event.data.get(k), int))
            self.add("llm.tokens", tokens)

    async def _instances_by_status(self) -> dict[str, float]:
        async with self.sessions() as session:
            rows = (await session.execute(select(Instance.status, func.count()).group_by(Instance.status))).all()
        counts = dict.fromkeys((f"instances.{s}" for s in INSTANCE_STATUSES), 0.0)
        counts.update({f"instances.{status}": float(n) for status, n in rows})
        return counts

    async def sample(self, now: datetime | None = None) -> None:
        """Read the gauges, then write everything collected since the last sample."""
        for source in self.gauges:
            try:
                values = await source()
            except Exception:
                _LOGGER.exception("a metrics-history gauge failed; skipping it this time")
                continue
            for series, value in values.items():
                self.add(series, value)
        for series, kind in SERIES.items():  # a counter with nothing to count is a zero, not a gap
            if kind == COUNTER and series not in self._pending:
                self._pending[series] = [0.0, 1]
        pending, self._pending = self._pending, {}
        await self.write(pending, now or datetime.now(UTC))

    async def write(self, values: dict[str, list[float]], now: datetime) -> None:
        rows = [
            {
                "series": series,
                "resolution": r.seconds,
                "bucket": bucket_of(now, r.seconds),
                "total": t,
                "count": int(c),
            }
            for series, (t, c) in values.items()
            for r in RESOLUTIONS
        ]
        async with self.sessions() as session, session.begin():
            if rows:
                insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
                statement = insert(MetricPoint).values(rows)
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["series", "resolution", "bucket"],
                        set_={
                            "total": MetricPoint.total + statement.excluded.total,
                            "count": MetricPoint.count + statement.excluded.count,
                        },
                    )
                )
            await session.execute(
                delete(MetricPoint).where(
                    or_(
                        *(
                            (MetricPoint.resolution == r.seconds) & (MetricPoint.bucket < now - r.keep)
                            for r in RESOLUTIONS
                        )
                    )
                )
            )

    # --- reading -------------------------------------------------------------------------------------

    async def read(self, names: Iterable[str], range_name: str) -> dict[str, Any]:
        resolution = RANGES[range_name]
        since = datetime.now(UTC) - resolution.keep
        wanted = list(names)
        async with self.sessions() as session:
            points = await session.scalars(
                select(MetricPoint)
                .where(
                    MetricPoint.series.in_(wanted),
                    MetricPoint.resolution == resolution.seconds,
                    MetricPoint.bucket >= since,
                )
                .order_by(MetricPoint.bucket)
            )
            series: dict[str, list[list[float]]] = {name: [] for name in wanted}
            for point in points:
                value = point.total if SERIES[point.series] == COUNTER else point.total / max(point.count, 1)
                series[point.series].append([point.bucket.timestamp() * 1000, round(value, 3)])
        return {"range": range_name, "resolution_seconds": resolution.seconds or self.interval, "series": series}

    # --- life cycle ----------------------------------------------------------------------------------

    async def _listen(self) -> None:
        async with self.bus.subscribe(everything=True) as subscription:
            while (event := await subscription.next()) is not None:
                self._on_event(event)

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample()
            except Exception:
                _LOGGER.exception("writing the metrics history failed; trying again")

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: listen to the bus and sample, after the database is migrated."""
        tasks = [
            asyncio.create_task(self._listen(), name="micropi history events"),
            asyncio.create_task(self._sample_forever(), name="micropi history sampler"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


HISTORY_KEY = web.AppKey("history", MetricsHistory)


# --- HTTP API ------------------------------------------------------------------------------------------

_NAME = "(?:" + "|".join(re.escape(name) for name in SERIES) + ")"
HISTORY_QUERY = vol.Schema(
    {
        vol.Optional("series", description=f"comma-separated, of: {', '.join(SERIES)}; default: all"): vol.All(
            str,
            vol.Length(max=1000),
            vol.Match(f"^{_NAME}(?:,{_NAME})*$", msg=f"use comma-separated names of: {', '.join(SERIES)}"),
        ),
        vol.Optional("range", default="24h", description="1h, 24h, 7d, 30d or 1y"): vol.In(list(RANGES)),
    }
)


async def get_history(call: Call) -> web.Response:
    names = call.query["series"].split(",") if "series" in call.query else list(SERIES)
    return web.json_response(await call.app[HISTORY_KEY].read(names, call.query["range"]))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/operator/history",
        get_history,
        "Metrics history (sign-ups, instances by status, devices online, model requests' latency and tokens) "
        "at the resolution that fits `range`: 1h raw, 24h per minute, 7d per 5 min, 30d per 30 min, 1y per hour",
        "operator",
        auth="operator",
        query=HISTORY_QUERY,
        responses={200: Reply("`{range, resolution_seconds, series: {name: [[epoch ms, value], ...]}}`")},
    ),
]
