"""Fairness and overhead of the gateway (hosting.gateway) in front of a GPU-emulating Ollama-wire server.

Fairness: the back-end runs `--slots` requests at once, each costs `--prompt-tokens` x `--prompt-token-ms` before
its first chunk and `--eval-tokens` x `--eval-token-ms` after. Ten quiet tenants send one request each, in
`--rounds` rounds, (1) alone, (2) while a noisy tenant has 20 requests in flight, through the fair
(round-robin) scheduler, and (3) the same through plain FIFO. Printed: the quiet tenants' p50/p95, and the
ratio of (2) to (1) (goal: p95 within 1.5x).

Overhead: an instant back-end, `--overhead-requests` sequential chats directly and through the gateway on
loopback; printed: time to first chunk and whole request, and the gateway's added latency, p50/p95.

    .venv/bin/python -m bench.gateway_fairness
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.ollama_wire import GpuEmulation, OllamaWireServer, Reply
from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import GatewayLimits, Instance, User
from hosting.gateway.service import Gateway
from hosting.gateway.settings import GatewaySettings, TenantLimits
from hosting.gateway.tokens import instance_token
from hosting.security import SecretBox

MODEL = "ministral-3:3b-instruct-2512-q4_K_M"
MESSAGES = [{"role": "user", "content": "Mennyi a hőmérséklet a nappaliban?"}]
NOISY_REQUESTS = 20
QUIET_TENANTS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def make_tenants(sessions: async_sessionmaker[AsyncSession], box: SecretBox, count: int) -> list[str]:
    tokens = []
    async with sessions() as session, session.begin():
        for index in range(count):
            user = User(email=f"t{index}@bench.example", password_hash="!")  # noqa: S106  # no login: a bench tenant
            session.add(user)
            await session.flush()
            instance = Instance(user_id=user.id, name=f"micropi-ha-bench{index}", port=9000 + index)
            session.add(instance)
            await session.flush()
            # The noisy tenant (0) may keep its 20 requests in flight: the queue, not the limit, is measured.
            session.add(GatewayLimits(user_id=user.id, concurrency=NOISY_REQUESTS, requests_per_minute=10_000))
            tokens.append(await instance_token(session, box, instance))
    return tokens


async def chat(http: aiohttp.ClientSession, url: str, token: str | None) -> tuple[float, float]:
    """One streamed chat; (seconds to the first chunk, seconds to the end)."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    first = 0.0
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    async with http.post(f"{url}/api/chat", json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        async for _chunk in response.content.iter_any():
            if not first:
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def quiet_round(http: aiohttp.ClientSession, url: str, tokens: list[str], noisy: str | None) -> list[float]:
    noise: list[asyncio.Task[tuple[float, float]]] = []
    if noisy is not None:
        noise = [asyncio.create_task(chat(http, url, noisy)) for _ in range(NOISY_REQUESTS)]
        await asyncio.sleep(0.05)  # the burst is there first
    quiet = await asyncio.gather(*(chat(http, url, token) for token in tokens))
    await asyncio.gather(*noise)
    return [total for _first, total in quiet]


async def with_gateway[T](server_url: str, slots: int, fair: bool, run: Callable[[str, list[str]], Awaitable[T]]) -> T:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}")
        await migrate(engine)
        sessions = session_factory(engine)
        box = SecretBox(Fernet.generate_key().decode())
        tokens = await make_tenants(sessions, box, QUIET_TENANTS + 1)
        settings = GatewaySettings(
            backend_urls=(server_url,),
            backend_slots=slots,
            models=(MODEL,),
            queue_per_tenant=NOISY_REQUESTS,
            queue_wait=120,
            limits=TenantLimits(requests_per_minute=10_000),
        )
        gateway = Gateway(settings, sessions, fair=fair)
        await gateway.start()
        try:
            port = await gateway.open_site("bench", "127.0.0.1", 0)
            return await run(f"http://127.0.0.1:{port}", tokens)
        finally:
            await gateway.close()
            await engine.dispose()


def line(label: str, values: list[float], baseline: list[float] | None = None) -> str:
    text = f"  {label:<44} p50 {percentile(values, 50):6.3f} s   p95 {percentile(values, 95):6.3f} s"
    if baseline is not None:
        text += f"   p95 x{percentile(values, 95) / percentile(baseline, 95):.2f} of no-noise"
    return text


async def fairness(args: argparse.Namespace) -> None:
    gpu = GpuEmulation(args.slots, args.prompt_token_ms / 1000, args.eval_token_ms / 1000)
    reply = Reply("A nappaliban huszonegy fok van.", prompt_eval_count=args.prompt_tokens, eval_count=args.eval_tokens)
    async with OllamaWireServer(models=[MODEL], responder=lambda _b: reply, gpu=gpu) as server:
        results: dict[str, list[float]] = {}
        for label, fair, noisy in (("no noise", True, False), ("noisy tenant, fair", True, True),
                                   ("noisy tenant, plain FIFO", False, True)):  # fmt: skip

            async def run(url: str, tokens: list[str], noisy: bool = noisy) -> list[float]:
                samples: list[float] = []
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                    for _ in range(args.rounds):
                        samples += await quiet_round(http, url, tokens[1:], tokens[0] if noisy else None)
                return samples

            results[label] = await with_gateway(server.url, args.slots, fair, run)
    per_request = args.prompt_tokens * args.prompt_token_ms / 1000 + args.eval_tokens * args.eval_token_ms / 1000
    print(
        f"Fairness: GPU emulation {args.slots} slots, {per_request:.2f} s per request; {QUIET_TENANTS} quiet tenants "
        f"x 1 request, {args.rounds} rounds; noisy tenant {NOISY_REQUESTS} concurrent"
    )
    base = results["no noise"]
    for label, values in results.items():
        print(line(f"quiet tenants, {label}", values, None if values is base else base))


async def overhead(args: argparse.Namespace) -> None:
    async with OllamaWireServer(models=[MODEL], responder=lambda _b: Reply("Kész.")) as server:

        async def measure(url: str, token: str | None) -> tuple[list[float], list[float]]:
            firsts, totals = [], []
            async with aiohttp.ClientSession() as http:
                for _ in range(20):  # warm-up: connections, caches
                    await chat(http, url, token)
                for _ in range(args.overhead_requests):
                    first, total = await chat(http, url, token)
                    firsts.append(first)
                    totals.append(total)
            return firsts, totals

        direct_first, direct_total = await measure(server.url, None)

        async def through(url: str, tokens: list[str]) -> tuple[list[float], list[float]]:
            return await measure(url, tokens[0])

        gw_first, gw_total = await with_gateway(server.url, 4, True, through)
    print(f"Overhead on loopback: {args.overhead_requests} sequential streamed chats, instant back-end")
    for label, direct, via in (("first chunk", direct_first, gw_first), ("whole request", direct_total, gw_total)):
        print(
            f"  {label:<14} direct p50 {percentile(direct, 50) * 1000:6.2f} ms p95 {percentile(direct, 95) * 1000:6.2f}"
            f" ms | gateway p50 {percentile(via, 50) * 1000:6.2f} ms p95 {percentile(via, 95) * 1000:6.2f} ms"
        )
    added = [g - d for g, d in zip(sorted(gw_total), sorted(direct_total), strict=True)]
    print(
        f"  added by the gateway: p50 {statistics.median(added) * 1000:.2f} ms, "
        f"p95 {(percentile(gw_total, 95) - percentile(direct_total, 95)) * 1000:.2f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_fairness", description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=800)
    parser.add_argument("--prompt-token-ms", type=float, default=0.25)
    parser.add_argument("--eval-tokens", type=int, default=15)
    parser.add_argument("--eval-token-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--overhead-requests", type=int, default=300)
    args = parser.parse_args(argv)
    asyncio.run(fairness(args))
    asyncio.run(overhead(args))


if __name__ == "__main__":
    main()
