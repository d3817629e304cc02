"""Speech endpoints: each tenant reaches the shared whisper (STT) and piper (TTS) only through TCP listeners
on its own network, spliced byte for byte to the shared services (Wyoming is JSON lines plus payloads, so
a byte pipe suffices, as in hosting.relay), with a limit on the connections each tenant holds at once.

Wyoming itself has no authentication, so who may connect is decided by where the listener is: in the docker
runtime on the host's address of the tenant's private network, refusing peers from any other network. The
process runtime (local `hass` processes, the embedded default) has one shared listener on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address
from urllib.parse import urlsplit

from hosting.gateway import metrics

_LOGGER = logging.getLogger(__name__)
_READ_SIZE = 64 * 1024
SERVICES = ("stt", "tts")


def parse_tcp_uri(uri: str) -> tuple[str, int] | None:
    """`tcp://host:port` -> (host, port); empty -> None."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"{uri!r} is not a tcp://HOST:PORT address")
    return parts.hostname, parts.port


@dataclass
class _Endpoint:
    service: str
    server: asyncio.Server
    allowed_network: IPv4Network | IPv6Network | None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])


class SpeechProxy:
    def __init__(self, upstreams: dict[str, tuple[str, int] | None], limit: int) -> None:
        self.upstreams = {name: target for name, target in upstreams.items() if target is not None}
        self.limit = limit
        self._endpoints: dict[str, dict[str, _Endpoint]] = {}
        self.served = dict.fromkeys(SERVICES, 0)  # connections spliced since start, per service

    async def open(
        self, key: str, host: str, ports: dict[str, int], allowed_network: IPv4Network | IPv6Network | None = None
    ) -> dict[str, int]:
        """Listen for one tenant (or, with `key` "local", the process runtime) on host:port per service
        (0: any free port); returns the ports. Services without an upstream get no listener."""
        endpoints = self._endpoints.setdefault(key, {})
        for service in self.upstreams:
            if service in endpoints:
                continue

            async def on_connect(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: str = service
            ) -> None:
                await self._serve(endpoints[service], reader, writer)

            server = await asyncio.start_server(on_connect, host, ports.get(service, 0), reuse_address=True)
            endpoints[service] = _Endpoint(service, server, allowed_network)
        return {service: endpoint.port for service, endpoint in endpoints.items()}

    def ports_of(self, key: str) -> dict[str, int]:
        return {service: endpoint.port for service, endpoint in self._endpoints.get(key, {}).items()}

    async def close(self, key: str) -> None:
        for endpoint in self._endpoints.pop(key, {}).values():
            endpoint.server.close()
            for writer in list(endpoint.writers):
                writer.close()
            await endpoint.server.wait_closed()

    async def close_all(self) -> None:
        for key in list(self._endpoints):
            await self.close(key)

    async def _serve(self, endpoint: _Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if endpoint.allowed_network is not None and not _peer_in(peer, endpoint.allowed_network):
            _LOGGER.warning("speech %s: refused a connection from %s", endpoint.service, peer)
            writer.close()
            return
        if len(endpoint.writers) >= self.limit:
            _LOGGER.info("speech %s: connection limit (%d) reached, refusing", endpoint.service, self.limit)
            writer.close()
            return
        endpoint.writers.add(writer)
        self.served[endpoint.service] += 1
        metrics.SPEECH_CONNECTIONS.labels(endpoint.service).inc()
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            host, port = self.upstreams[endpoint.service]
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            for side in (writer, upstream_writer):
                sock = side.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except OSError as err:
            _LOGGER.warning("speech %s: upstream unreachable: %s", endpoint.service, err)
        finally:
            metrics.SPEECH_CONNECTIONS.labels(endpoint.service).dec()
            endpoint.writers.discard(writer)
            for ours in [writer] if upstream_writer is None else [writer, upstream_writer]:
                ours.close()
                with contextlib.suppress(OSError):
                    await ours.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_READ_SIZE):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()


def _peer_in(peer: tuple[str, int] | None, network: IPv4Network | IPv6Network) -> bool:
    try:
        return peer is not None and ip_address(peer[0]) in network
    except ValueError:
        return False
