"""Sign-up -> ready on the `process` runtime: how long a new user waits for their onboarded HA.

    python -m bench.signup_ready              # 5 sign-ups, one after the other
    python -m bench.signup_ready --runs 10

Runs the hosting service in this process (embedded defaults in a temporary data dir, the `process`
runtime with the real `.venv-ha/bin/hass`, an Ollama wire-format server standing in for Ollama), then for
each run: POST /api/auth/signup, poll GET /api/me/instance until it leaves `provisioning`, print the
time, delete the instance. Each run is a fresh HA: start, onboarding, service token, our integration's
entry and agent, the Assist pipeline. Prints every run and min / median / max.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from bench.ollama_wire import OllamaWireServer
from hosting.app import create_app
from hosting.instances import INSTANCE_MANAGER_KEY
from hosting.settings import Settings

PASSWORD = "benchmark password"  # noqa: S105  # throw-away accounts on a throw-away service


async def measure(runs: int) -> list[float]:
    ollama = OllamaWireServer()
    await ollama.start()
    first_port = random.randrange(20000, 31000)
    with tempfile.TemporaryDirectory(prefix="micropi-signup-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            jwt_secret=uuid.uuid4().hex * 2,
            fernet_key=Fernet.generate_key().decode(),
            runtime="process",
            port_range=(first_port, first_port + 20),
            ollama_url=ollama.url,
            reconcile_interval=3600,
            signup_limit_per_ip=10_000,
            signup_limit_per_account=10_000,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
        await client.start_server()
        times = []
        try:
            for run in range(1, runs + 1):
                started = time.monotonic()
                response = await client.post(
                    "/api/auth/signup", json={"email": f"bench-{uuid.uuid4().hex[:8]}@example.hu", "password": PASSWORD}
                )
                body = await response.json()
                if response.status != 201:
                    raise SystemExit(f"sign-up failed: {response.status} {body}")
                headers = {"Authorization": f"Bearer {body['tokens']['access_token']}"}
                while True:
                    instance = await (await client.get("/api/me/instance", headers=headers)).json()
                    if instance["status"] != "provisioning":
                        break
                    await asyncio.sleep(0.1)
                elapsed = time.monotonic() - started
                if instance["status"] != "ready":
                    raise SystemExit(f"run {run}: {instance['status']}: {instance['status_reason']}")
                times.append(elapsed)
                print(f"run {run}: ready in {elapsed:.1f} s", flush=True)
                await client.app[INSTANCE_MANAGER_KEY].delete(instance["id"])
        finally:
            await client.close()
            await ollama.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    times = asyncio.run(measure(args.runs))
    print(
        f"sign-up -> ready (process runtime, {len(times)} runs): min {min(times):.1f} s, "
        f"median {statistics.median(times):.1f} s, max {max(times):.1f} s"
    )


if __name__ == "__main__":
    main()
