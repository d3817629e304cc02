"""The gateway: the one door from a tenant's HA to the shared Ollama servers.

It is its own aiohttp application with its own listeners (`open_site`), never the public API's port: the
process runtime gets one on 127.0.0.1, the docker runtime one on the host's address of each tenant's private
network (which refuses peers from elsewhere, and tokens of another tenant). Per request:

1. the Bearer token names the tenant (401 without or with a wrong one);
2. only /api/chat, /api/tags, /api/show (allow-listed models) and /api/version pass; anything else is 403;
3. the tenant's limits (concurrency, requests/minute, tokens/day) are checked (429 + Retry-After), and
   num_ctx/num_predict are clamped;
4. the fair scheduler grants a back-end slot (the least busy back-end that has the model), waiting in the
   tenant's queue when all are busy (bounded: 503);
5. the answer streams back chunk by chunk as it arrives. A back-end that fails before anything was sent is
   retried on another; after, the stream ends with Ollama's in-stream error line. A client that goes away
   cancels the handler (handler_cancellation), which closes the upstream request, so Ollama stops writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting.errors import REQUEST_ID_HEADER, REQUEST_ID_KEY, error_for_exception
from hosting.gateway import metrics
from hosting.gateway.backends import Backend, BackendPool, canonical_model
from hosting.gateway.limits import LimitExceeded, TenantMeter
from hosting.gateway.scheduler import FairScheduler, Unavailable
from hosting.gateway.settings import GatewaySettings
from hosting.gateway.speech import SpeechProxy, parse_tcp_uri
from hosting.gateway.tokens import Tenant, TenantDirectory
from hosting.middleware import new_request_id

_LOGGER = logging.getLogger(__name__)

TENANT_KEY = web.RequestKey("gateway_tenant", Tenant)
ALLOWED_PATHS = frozenset({"/api/chat", "/api/tags", "/api/show", "/api/version"})
MAX_BODY = 8 * 1024**2  # a chat with a large home's state is some hundred kB
MIDSTREAM_ERROR = "the model server stopped in the middle of the answer; ask again"


@dataclass
class RequestRecord:
    """One finished model request, for metering (never the prompt or the answer)."""

    user_id: str
    instance_id: str
    endpoint: str
    model: str
    status: int
    outcome: str  # ok, limited, unavailable, upstream_error, stream_error, cancelled, bad_request
    request_id: str
    backend: str = ""
    prompt_tokens: int = 0
    eval_tokens: int = 0
    first_chunk_ms: int | None = None
    total_ms: int = 0


@dataclass
class _Site:
    site: web.TCPSite
    host: str
    instance_id: str | None  # docker: only this instance's token is accepted here
    allowed_network: IPv4Network | IPv6Network | None


class _ClientGone(Exception):
    """Writing to the tenant failed: it went away."""


@dataclass
class _Stream:
    """What the gateway learns from an answer passing through."""

    final: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    _partial: bytes = b""

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self._line(line)
        if len(self._partial) > MAX_BODY:
            self._partial = b""

    def end(self) -> None:
        if self._partial:
            self._line(self._partial)  # a non-streamed answer is one JSON object without a newline
            self._partial = b""

    def _line(self, line: bytes) -> None:
        if b'"eval_count"' not in line and b'"error"' not in line:
            return
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                if "error" in obj and "model" not in obj:
                    self.error = str(obj["error"])[:300]
                elif obj.get("done"):
                    self.final = obj


def refusal(
    request: web.Request, status: int, code: str, message: str, retry_after: float | None = None
) -> web.Response:
    """The service's error shape; `retry_after` also in the body, since Ollama clients drop headers."""
    error: dict[str, Any] = {"code": code, "message": message}
    headers = {}
    if retry_after is not None:
        seconds = max(1, round(retry_after + 0.499))
        error["retry_after"] = seconds
        headers["Retry-After"] = str(seconds)
    body = {"error": error, "request_id": request.get(REQUEST_ID_KEY, "")}
    return web.json_response(body, status=status, headers=headers)


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        fair: bool = True,
    ) -> None:
        self.settings = settings
        self.pool = BackendPool(
            settings.backend_urls,
            settings.backend_slots,
            api_key=settings.backend_api_key,
            interval=settings.health_interval,
            timeout=settings.connect_timeout,
            on_change=self._backends_changed,
        )
        self.scheduler = FairScheduler(
            self.pool.backends,
            queue_per_tenant=settings.queue_per_tenant,
            queue_total=settings.queue_total,
            queue_wait=settings.queue_wait,
            fair=fair,
        )
        self.meter = TenantMeter()
        self.directory = TenantDirectory(sessions, settings.limits)
        self.allowed_models = {canonical_model(m) for m in settings.models}
        self._recheck: asyncio.Task[None] | None = None  # the one health check requests share while all are down
        # Called with every finished request (metering); must not block.
        self.recorders: list[Callable[[RequestRecord], None]] = []
        # Extra routes on the gateway's listeners (e.g. the integration's turn reports), added before start.
        self.extra_routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = []
        self.speech = SpeechProxy(
            {"stt": parse_tcp_uri(settings.stt_upstream), "tts": parse_tcp_uri(settings.tts_upstream)},
            settings.speech_connections,
        )
        self._runner: web.AppRunner | None = None
        self._sites: dict[str, _Site] = {}
        self._sites_by_host: dict[str, _Site] = {}

    # ---- lifecycle -----------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[_errors_middleware, self._tenant_middleware])
        app.router.add_post("/api/chat", self.chat)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_post("/api/show", self.show)
        app.router.add_get("/api/version", self.version)
        for method, path, handler in self.extra_routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self.forbidden)
        return app

    async def start(self) -> None:
        await self.pool.start()
        # handler_cancellation: a tenant that disconnects cancels its handler, and with it the upstream call.
        self._runner = web.AppRunner(self._make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=2)
        await self._runner.setup()

    async def close(self) -> None:
        await self.speech.close_all()
        for key in list(self._sites):
            await self.close_site(key)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._recheck is not None:
            self._recheck.cancel()
            await asyncio.gather(self._recheck, return_exceptions=True)
        await self.pool.close()

    async def context(self, _app: web.Application) -> AsyncIterator[None]:
        await self.start()
        yield
        await self.close()

    async def open_site(
        self,
        key: str,
        host: str,
        port: int,
        *,
        instance_id: str | None = None,
        allowed_network: IPv4Network | IPv6Network | None = None,
    ) -> int:
        """Listen on host:port (0: any free port) for tenants; returns the port. `instance_id` and
        `allowed_network` make it one tenant's listener (docker): other tokens and peers are refused."""
        if key in self._sites:
            return self.port_of(key)
        assert self._runner is not None, "start the gateway first"
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        entry = _Site(site, host, instance_id, allowed_network)
        self._sites[key] = entry
        self._sites_by_host[host] = entry
        return self.port_of(key)

    async def open_tenant(
        self, instance_id: str, host: str, allowed_network: IPv4Network | IPv6Network | None
    ) -> dict[str, int]:
        """Everything one tenant (docker) reaches, on `host`, its network's address: the model gateway and
        the speech endpoints; returns the ports by name ("gateway", "stt", "tts")."""
        ports = {"gateway": await self.open_site(instance_id, host, self.settings.port, instance_id=instance_id,
                                                 allowed_network=allowed_network)}  # fmt: skip
        speech_ports = {"stt": self.settings.stt_port, "tts": self.settings.tts_port}
        ports |= await self.speech.open(instance_id, host, speech_ports, allowed_network)
        return ports

    async def close_tenant(self, instance_id: str) -> None:
        await self.speech.close(instance_id)
        await self.close_site(instance_id)

    def port_of(self, key: str) -> int:
        server = self._sites[key].site._server  # aiohttp keeps the bound socket there
        assert isinstance(server, asyncio.Server)
        return int(server.sockets[0].getsockname()[1])

    async def close_site(self, key: str) -> None:
        entry = self._sites.pop(key, None)
        if entry is not None:
            self._sites_by_host.pop(entry.host, None)
            await entry.site.stop()

    def _backends_changed(self) -> None:
        for backend in self.pool.backends:
            metrics.GATEWAY_BACKEND_UP.labels(backend.url).set(1 if backend.healthy else 0)
        self.scheduler.dispatch()

    # ---- authentication ------------------------------------------------------------------------------

    @web.middleware
    async def _tenant_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        site = self._site_of(request)
        if site is not None and site.allowed_network is not None and not _peer_in(request, site.allowed_network):
            _LOGGER.warning("gateway: refused %s on the listener of %s", request.remote, site.instance_id)
            return refusal(request, 403, "forbidden", "this gateway address serves another network")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return refusal(request, 401, "unauthorized", "send the instance's gateway token as `Authorization: Bearer`")
        tenant = await self.directory.resolve(token.strip())
        if tenant is None or (site is not None and site.instance_id not in (None, tenant.instance_id)):
            return refusal(request, 401, "invalid_token", "the gateway token is not valid (rotated or revoked?)")
        request[TENANT_KEY] = tenant
        return await handler(request)

    def _site_of(self, request: web.Request) -> _Site | None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return self._sites_by_host.get(sockname[0]) if sockname else None

    # ---- the allowed API -----------------------------------------------------------------------------

    async def forbidden(self, request: web.Request) -> web.Response:
        return refusal(
            request,
            403,
            "forbidden",
            f"{request.method} {request.path} is not offered by the MicroPi gateway; only chat, tags, show and "
            "version are. The operator chooses the models.",
        )

    def _healthy(self) -> list[Backend]:
        return [b for b in self.pool.backends if b.healthy]

    async def _recheck_if_all_down(self) -> None:
        """With every back-end down, a request checks again first: a server that came back answers now,
        not at the next periodic check. Requests at the same time share one check (a check is one GET
        /api/tags per back-end; a dead one refuses at once)."""
        if self._healthy():
            return
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.create_task(self.pool.check_all(), name="gateway-recheck")
        await asyncio.shield(self._recheck)

    async def tags(self, request: web.Request) -> web.Response:
        await self._recheck_if_all_down()
        if not self._healthy():
            return refusal(request, 503, "no_backend", "no model server is reachable now; try again shortly")
        entries: dict[str, dict[str, Any]] = {}
        for backend in self._healthy():
            for name, entry in backend.listing.items():
                if name in self.allowed_models:
                    entries.setdefault(name, entry)
        return web.json_response({"models": [entries[name] for name in sorted(entries)]})

    async def version(self, request: web.Request) -> web.StreamResponse:
        await self._recheck_if_all_down()
        return await self._forward(request, "GET", "/api/version", None, self._healthy())

    async def show(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or body.get("name") or "")
        if (refused := self._model_refusal(request, model)) is not None:
            return refused
        holders = [b for b in self._healthy() if b.has(model)]
        return await self._forward(request, "POST", "/api/show", body, holders)

    def _model_refusal(self, request: web.Request, model: str) -> web.Response | None:
        if canonical_model(model) in self.allowed_models:
            return None
        return refusal(
            request,
            404,
            "model_not_found",
            f"model '{model}' not found: this server offers {', '.join(sorted(self.allowed_models))}; "
            "the operator chooses the models",
        )

    async def _forward(
        self, request: web.Request, method: str, path: str, body: dict[str, Any] | None, backends: list[Backend]
    ) -> web.StreamResponse:
        """A small, unscheduled call (tags, show, version), tried on each back-end in turn."""
        for backend in sorted(backends, key=lambda b: b.in_flight / b.slots):
            try:
                async with self.pool.http.request(method, f"{backend.url}{path}", json=body) as upstream:
                    payload = await upstream.read()
                    if upstream.status >= 500:
                        continue
                    return web.Response(body=payload, status=upstream.status, content_type="application/json")
            except (aiohttp.ClientError, TimeoutError) as err:
                self.pool.mark_failed(backend, f"{type(err).__name__}: {err}")
        return refusal(request, 503, "no_backend", "no model server is reachable now; try again shortly")

    # ---- chat ------------------------------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        tenant = request[TENANT_KEY]
        started = time.perf_counter()
        record = RequestRecord(
            tenant.user_id, tenant.instance_id, "chat", "", 200, "ok", request.get(REQUEST_ID_KEY, "")
        )
        try:
            response = await self._chat(request, tenant, record, started)
            record.status = response.status
            return response
        except asyncio.CancelledError:
            record.outcome, record.status = "cancelled", 499
            raise
        finally:
            record.total_ms = round((time.perf_counter() - started) * 1000)
            self._record(record)

    async def _chat(
        self, request: web.Request, tenant: Tenant, record: RequestRecord, started: float
    ) -> web.StreamResponse:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            record.outcome = "bad_request"
            return body
        record.model = model = str(body.get("model") or "")
        if (refused := self._model_refusal(request, model)) is not None:
            record.outcome = "bad_request"
            return refused
        _clamp_options(body, tenant.limits.max_num_ctx, tenant.limits.max_num_predict)
        await self._recheck_if_all_down()
        try:
            self.meter.admit(tenant.user_id, tenant.limits)
        except LimitExceeded as err:
            record.outcome = "limited"
            metrics.GATEWAY_LIMITED.labels(err.limit).inc()
            return refusal(request, 429, "rate_limited", err.message, err.retry_after)
        try:
            return await self._stream_chat(request, tenant, body, record, started)
        finally:
            self.meter.finish(tenant.user_id, record.prompt_tokens + record.eval_tokens)

    async def _stream_chat(
        self, request: web.Request, tenant: Tenant, body: dict[str, Any], record: RequestRecord, started: float
    ) -> web.StreamResponse:
        payload = json.dumps(body).encode()
        tried: set[Backend] = set()
        while True:
            queued_at = time.perf_counter()
            metrics.GATEWAY_WAITING.set(self.scheduler.waiting + 1)
            try:
                backend = await self.scheduler.acquire(tenant.user_id, record.model, frozenset(tried))
            except Unavailable as err:
                record.outcome = "unavailable"
                return refusal(request, 503, err.code, err.message, err.retry_after)
            finally:
                metrics.GATEWAY_WAITING.set(self.scheduler.waiting)
            metrics.GATEWAY_QUEUE_SECONDS.observe(time.perf_counter() - queued_at)
            metrics.GATEWAY_BACKEND_IN_FLIGHT.labels(backend.url).set(backend.in_flight)
            record.backend = backend.url
            try:
                response = await self._relay(request, backend, payload, record, started)
            except _Retry as retry:
                tried.add(backend)
                if retry.dead:
                    self.pool.mark_failed(backend, retry.reason)
                _LOGGER.info("gateway: %s failed before answering (%s); trying another", backend.url, retry.reason)
                continue
            finally:
                self.scheduler.release(backend)
                metrics.GATEWAY_BACKEND_IN_FLIGHT.labels(backend.url).set(backend.in_flight)
            return response

    async def _relay(
        self, request: web.Request, backend: Backend, payload: bytes, record: RequestRecord, started: float
    ) -> web.StreamResponse:
        response: web.StreamResponse | None = None
        stream = _Stream()
        try:
            async with self.pool.http.post(
                f"{backend.url}/api/chat", data=payload, headers={"Content-Type": "application/json"}
            ) as upstream:
                if upstream.status != 200:
                    text = await upstream.read()
                    if upstream.status >= 500:
                        raise _Retry(f"HTTP {upstream.status}", dead=False)
                    record.outcome = "upstream_error"
                    return web.Response(body=text, status=upstream.status, content_type="application/json")
                async for chunk in upstream.content.iter_any():
                    if response is None:
                        response = web.StreamResponse(
                            headers={"Content-Type": upstream.headers.get("Content-Type", "application/x-ndjson")}
                        )
                        response.headers[REQUEST_ID_HEADER] = record.request_id
                        await _write(response.prepare(request))
                        record.first_chunk_ms = round((time.perf_counter() - started) * 1000)
                        metrics.GATEWAY_FIRST_CHUNK_SECONDS.observe(time.perf_counter() - started)
                    await _write(response.write(chunk))
                    stream.feed(chunk)
            stream.end()
            if response is None:
                raise _Retry("empty answer", dead=False)
            if stream.error is not None:
                record.outcome = "stream_error"
            elif not stream.final:
                raise aiohttp.ClientPayloadError("the stream ended without its final chunk")
        except _ClientGone:
            record.outcome, record.status = "cancelled", 499
            assert response is not None
            return response
        except (aiohttp.ClientError, TimeoutError) as err:
            if response is None:  # nothing sent yet: another back-end can still answer
                raise _Retry(f"{type(err).__name__}: {err}", dead=True) from err
            self.pool.mark_failed(backend, f"{type(err).__name__} mid-stream")
            record.outcome = "stream_error"
            with contextlib.suppress(_ClientGone):
                await _write(response.write(json.dumps({"error": MIDSTREAM_ERROR}).encode() + b"\n"))
        finally:
            if stream.final:
                backend.observe_final(stream.final)
                record.prompt_tokens = int(stream.final.get("prompt_eval_count") or 0)
                record.eval_tokens = int(stream.final.get("eval_count") or 0)
        assert response is not None
        with contextlib.suppress(_ClientGone):
            await _write(response.write_eof())
        return response

    def _record(self, record: RequestRecord) -> None:
        metrics.GATEWAY_REQUESTS.labels(record.endpoint, record.outcome).inc()
        metrics.GATEWAY_REQUEST_SECONDS.observe(record.total_ms / 1000)
        metrics.GATEWAY_TOKENS.labels("prompt").inc(record.prompt_tokens)
        metrics.GATEWAY_TOKENS.labels("eval").inc(record.eval_tokens)
        for recorder in self.recorders:
            try:
                recorder(record)
            except Exception:
                _LOGGER.exception("gateway: a usage recorder failed")

    def backends_view(self) -> list[dict[str, Any]]:
        return [b.view() for b in self.pool.backends]


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The service's request id and error shape (no CORS, no access log: tenants' HAs, not browsers)."""
    request[REQUEST_ID_KEY] = new_request_id()
    try:
        response = await handler(request)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        response = error_for_exception(request, err)
    except Exception as err:  # noqa: BLE001  # every failure becomes the one error shape
        response = error_for_exception(request, err)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]
    return response


class _Retry(Exception):
    def __init__(self, reason: str, *, dead: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dead = dead


async def _write(write: Awaitable[Any]) -> None:
    try:
        await write
    except ConnectionError as err:  # aiohttp: "Cannot write to closing transport"
        raise _ClientGone from err


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return refusal(request, 400, "bad_request", "the request body is not valid JSON")
    if not isinstance(body, dict):
        return refusal(request, 400, "bad_request", "the request body must be a JSON object")
    return body


def _clamp_options(body: dict[str, Any], max_ctx: int, max_predict: int) -> None:
    options = body.get("options")
    if not isinstance(options, dict):
        options = body["options"] = {}
    for name, cap in (("num_ctx", max_ctx), ("num_predict", max_predict)):
        value = options.get(name)
        if not cap:
            continue
        # Ollama reads num_predict -1 / -2 as "no limit": that is exactly what the clamp is for.
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value > cap:
            if name == "num_ctx" and value is None:
                continue  # the model's own default context is within the operator's reach already
            options[name] = cap


def _peer_in(request: web.Request, network: IPv4Network | IPv6Network) -> bool:
    try:
        return request.remote is not None and ip_address(request.remote) in network
    except ValueError:
        return False
