"""Tenant isolation in the docker runtime, probed from inside tenant A's container on a real private dockerd.

Two tenants' containers made by the project's own DockerRuntime (the stand-in image: busybox `nc` speaks
raw HTTP from inside), stand-ins for Ollama, whisper and piper on a shared network as compose.yaml used to
attach every HA to, and the real gateway (hosting.gateway) with its listeners on each tenant's network in
front of an Ollama-wire back-end. From A:
- B's container: unreachable by name and by address;
- Ollama, whisper, piper: unreachable by name and by address;
- the gateway on A's network: A's token works; none, forged, and B's token are refused; pull/delete are 403;
- B's gateway and speech listeners (the host's address on B's network): refused;
- A's speech endpoints: spliced to the shared whisper/piper.
Controls show the probes can succeed: the host reaches every container, and a container put on the shared
network (the old layout) reaches Ollama by name.
"""

from __future__ import annotations

import asyncio
import shlex
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_network
from pathlib import Path

import docker
import pytest
from cryptography.fernet import Fernet
from docker.models.containers import Container

from bench.ollama_wire import OllamaWireServer
from hosting.db import create_engine, migrate, session_factory
from hosting.gateway.service import Gateway
from hosting.gateway.settings import GatewaySettings
from hosting.gateway.setup import ON_TENANT_NETWORK, GatewayHost
from hosting.gateway.usage import UsageStore
from hosting.runtime.base import InstanceSpec, ownership_labels
from hosting.runtime.docker import DockerRuntime
from hosting.security import SecretBox
from tests.hosting.conftest import free_port
from tests.hosting.dockerd import STAND_IN_IMAGE, build_stand_in_images, private_dockerd
from tests.hosting.test_gateway import MODEL, add_home

pytestmark = pytest.mark.docker

SHARED_SERVICES = {"ollama": 11434, "whisper": 10300, "piper": 10200}


@pytest.fixture(scope="module")
def dockerd_url() -> Iterator[str]:
    with private_dockerd() as url:
        build_stand_in_images(url)
        yield url


@dataclass
class Tenant:
    name: str
    container: Container
    address: str  # the container's own address
    gateway: str  # the host's address on the tenant's network
    network: IPv4Network
    token: str = ""


def _tenant(client: docker.DockerClient, name: str) -> Tenant:
    container = client.containers.get(name)
    network = client.networks.get(DockerRuntime.network_name(name))
    ipam = network.attrs["IPAM"]["Config"][0]
    address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    return Tenant(name, container, address, ipam["Gateway"], ip_network(ipam["Subnet"]))  # type: ignore[arg-type]


def connects(container: Container, host: str, port: int) -> bool:
    """Whether a TCP connection from inside the container gets through (busybox nc, 3 s)."""
    result = container.exec_run(["sh", "-c", f"nc -w 3 {shlex.quote(host)} {port} </dev/null"])
    return result.exit_code == 0


def http_status(  # noqa: PLR0917  # read as one request line at the call sites
    container: Container, method: str, host: str, port: int, path: str, token: str | None
) -> int | None:
    """The HTTP status a raw request from inside the container gets; None when nothing answers."""
    body = '{"model": "%s"}' % MODEL  # noqa: UP031  # the JSON braces would need doubling in an f-string
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", "Content-Type: application/json",
             f"Content-Length: {len(body)}"] + ([f"Authorization: Bearer {token}"] if token else [])  # fmt: skip
    request = "\r\n".join(lines) + "\r\n\r\n" + body
    # busybox nc hangs up when its input ends: the sleep leaves the answer time to come.
    script = f"(printf %s {shlex.quote(request)}; sleep 1) | nc -w 5 {host} {port}"
    output = container.exec_run(["sh", "-c", script]).output.decode(errors="replace")
    first = output.split("\r\n", 1)[0].split(" ")
    return int(first[1]) if len(first) > 1 and first[0].startswith("HTTP/") else None


def speech_answer(container: Container, host: str, port: int) -> str:
    """What the speech endpoint's far side answers to a line (the stand-ins are busybox httpd)."""
    script = f"(printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | nc -w 3 {host} {port}"
    output = container.exec_run(["sh", "-c", script]).output.decode(errors="replace")
    return output.split("\r\n", 1)[0] or "nothing (refused)"


@pytest.fixture
async def world(dockerd_url: str, tmp_path: Path) -> AsyncIterator[dict[str, object]]:
    client = docker.DockerClient(base_url=dockerd_url, version="auto")
    runtime = DockerRuntime(dockerd_url, stop_timeout=1)
    suffix = uuid.uuid4().hex[:6]
    shared = client.networks.create(f"micropi-ollama-{suffix}", driver="bridge")
    services: dict[str, Container] = {}
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'iso.db'}")
    await migrate(engine)
    sessions = session_factory(engine)
    box = SecretBox(Fernet.generate_key().decode())
    backend = OllamaWireServer(models=[MODEL])
    await backend.start()
    gateway: Gateway | None = None
    try:
        for name, port in SHARED_SERVICES.items():
            services[name] = client.containers.run(
                STAND_IN_IMAGE, ["httpd", "-f", "-p", str(port), "-h", "/www"], name=f"{name}-{suffix}",
                network=shared.name, detach=True,
            )  # fmt: skip
            # The name tenants would have dialled on the shared network.
            shared.disconnect(services[name])
            shared.connect(services[name], aliases=[name])
        tenants = {}
        for label in ("a", "b"):
            home = await add_home(sessions, box, f"{label}{suffix}")
            spec = InstanceSpec(
                name=home.instance.name, port=free_port(), image=STAND_IN_IMAGE,
                labels=ownership_labels(home.instance.id, home.user_id), memory="64m", cpus=0.2,
            )  # fmt: skip
            await runtime.ensure_started(spec)
            tenant = await asyncio.to_thread(_tenant, client, spec.name)
            tenant.token = home.token
            tenants[label] = (tenant, home)
        for container in services.values():
            container.reload()
        service_ips = {
            name: c.attrs["NetworkSettings"]["Networks"][shared.name]["IPAddress"] for name, c in services.items()
        }
        settings = GatewaySettings(
            backend_urls=(backend.url,), models=(MODEL,), port=free_port(),
            stt_upstream=f"tcp://{service_ips['whisper']}:10300", tts_upstream=f"tcp://{service_ips['piper']}:10200",
            stt_port=free_port(), tts_port=free_port(), bind_host=ON_TENANT_NETWORK,
        )  # fmt: skip
        # The listeners as the service places them: where the docker runtime says the tenant's endpoints go.
        gateway = Gateway(settings, sessions)
        host = GatewayHost(gateway, UsageStore(sessions), sessions, runtime)
        await gateway.start()
        ports = {}
        for label, (tenant, home) in tenants.items():
            await host.open_for(home.instance)
            assert host.url_for(home.instance.id) == f"http://{tenant.gateway}:{settings.port}"  # what HA is given
            uris = host.speech_uris_for(home.instance.id)
            ports[label] = {"gateway": settings.port} | {k: int(v.rsplit(":", 1)[1]) for k, v in uris.items()}
        yield {
            "client": client,
            "a": tenants["a"][0],
            "b": tenants["b"][0],
            "ports": ports,
            "services": service_ips,
            "shared": shared,
            "backend": backend,
        }
    finally:
        if gateway is not None:
            await gateway.close()
        await backend.stop()
        for found in await runtime.list_instances():
            await runtime.remove(found.name)
        for container in services.values():
            container.remove(force=True)
        shared.remove()
        await runtime.close()
        client.close()
        await engine.dispose()


async def test_tenant_a_reaches_only_the_gateway_and_its_own_endpoints(world: dict[str, object]) -> None:
    a, b = world["a"], world["b"]
    assert isinstance(a, Tenant) and isinstance(b, Tenant)
    ports: dict[str, dict[str, int]] = world["ports"]  # type: ignore[assignment]
    services: dict[str, str] = world["services"]  # type: ignore[assignment]
    backend: OllamaWireServer = world["backend"]  # type: ignore[assignment]
    client: docker.DockerClient = world["client"]  # type: ignore[assignment]
    shared: docker.models.networks.Network = world["shared"]  # type: ignore[assignment]

    async def probe(check: object, *args: object) -> object:
        return await asyncio.to_thread(check, *args)  # type: ignore[arg-type]

    matrix: list[tuple[str, str, object]] = []

    def row(target: str, result: object) -> object:
        matrix.append(("A", target, result))
        return result

    gw = ports["a"]["gateway"]
    # The gateway on A's own network.
    assert row("gateway, A's token, GET /api/tags", await probe(http_status, a.container, "GET", a.gateway, gw,
                                                                "/api/tags", a.token)) == 200  # fmt: skip
    assert row("gateway, POST /api/chat", await probe(http_status, a.container, "POST", a.gateway, gw,
                                                      "/api/chat", a.token)) == 200  # fmt: skip
    assert row("gateway, no token", await probe(http_status, a.container, "GET", a.gateway, gw, "/api/tags",
                                                None)) == 401  # fmt: skip
    assert row("gateway, forged token", await probe(http_status, a.container, "GET", a.gateway, gw, "/api/tags",
                                                    "mpg_" + "x" * 43)) == 401  # fmt: skip
    assert row("gateway, B's token", await probe(http_status, a.container, "GET", a.gateway, gw, "/api/tags",
                                                 b.token)) == 401  # fmt: skip
    assert row("gateway, POST /api/pull", await probe(http_status, a.container, "POST", a.gateway, gw, "/api/pull",
                                                      a.token)) == 403  # fmt: skip
    assert row("gateway, DELETE /api/delete", await probe(http_status, a.container, "DELETE", a.gateway, gw,
                                                          "/api/delete", a.token)) == 403  # fmt: skip
    assert ("POST", "/api/pull") not in backend.hits and ("DELETE", "/api/delete") not in backend.hits
    # A's speech endpoints reach the shared services (the stand-ins answer HTTP).
    for service in ("stt", "tts"):
        assert "HTTP/1." in row(f"own {service} endpoint", await probe(speech_answer, a.container, a.gateway,
                                                                       ports["a"][service]))  # type: ignore[operator]  # fmt: skip

    # B, by name and by address, and B's listeners on the host.
    assert row("B's HA by name", await probe(connects, a.container, b.name, 8123)) is False
    assert row("B's HA by address", await probe(connects, a.container, b.address, 8123)) is False
    assert row("B's gateway listener with B's token", await probe(http_status, a.container, "GET", b.gateway, gw,
                                                                  "/api/tags", b.token)) in (None, 403)  # fmt: skip
    for service in ("stt", "tts"):
        answer = await probe(speech_answer, a.container, b.gateway, ports["b"][service])
        assert "HTTP/" not in row(f"B's {service} endpoint", answer)  # type: ignore[operator]
    # The shared services directly.
    for name, port in SHARED_SERVICES.items():
        assert row(f"{name} by name", await probe(connects, a.container, name, port)) is False
        assert row(f"{name} by address", await probe(connects, a.container, services[name], port)) is False

    # What the hosting service itself reaches on the host's loopback (the Ollama back-end here; PostgreSQL
    # and the API likewise), tried through the host's address on A's network.
    backend_port = int(backend.url.rsplit(":", 1)[1])
    assert row("host loopback service via A's network address", await probe(connects, a.container, a.gateway,
                                                                            backend_port)) is False  # fmt: skip
    mounts = a.container.attrs["Mounts"]
    assert row("Docker socket mounted", any("docker.sock" in m.get("Source", "") for m in mounts)) is False

    # Controls: the probes can succeed where a path exists.
    assert await probe(connects, b.container, b.address, 8123)  # B itself
    control = await asyncio.to_thread(
        client.containers.run, STAND_IN_IMAGE, ["sleep", "60"], detach=True, network=shared.name
    )
    try:
        assert await probe(connects, control, "ollama", 11434)  # the old layout: every HA reached Ollama by name
    finally:
        await asyncio.to_thread(control.remove, force=True)

    print("\nisolation matrix (from -> to -> result):")
    for source, target, result in matrix:
        print(f"  {source} -> {target} -> {result}")
