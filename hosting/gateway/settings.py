"""The gateway's configuration, read from `MICROPI_*` environment variables (see `GatewaySettings.from_env`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hosting.settings import SettingsError, env_number

DEFAULT_MODEL = "ministral-3:3b-instruct-2512-q4_K_M"


@dataclass(frozen=True, kw_only=True)
class TenantLimits:
    """What one household may use; the operator overrides any of them per account (`gateway_limits`)."""

    concurrency: int = 2  # requests in flight or queued at once
    requests_per_minute: int = 30
    tokens_per_day: int = 2_000_000  # prompt + generated
    max_num_ctx: int = 16384  # clamp on options.num_ctx
    max_num_predict: int = 1024  # clamp on options.num_predict (also the default when none is sent)

    def merged(self, overrides: Mapping[str, int | None]) -> TenantLimits:
        known = {k: v for k, v in overrides.items() if v is not None and k in self.__dataclass_fields__}
        return TenantLimits(**{**self.__dict__, **known})


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    # The Ollama servers behind the gateway, as the hosting service reaches them.
    backend_urls: tuple[str, ...] = ("http://127.0.0.1:11434",)
    backend_api_key: str = field(default="", repr=False)  # sent upstream as a Bearer token when set
    # Requests one back-end runs at once (Ollama's OLLAMA_NUM_PARALLEL); more wait in the fair queue.
    backend_slots: int = 4
    # The only models tenants see and may use (/api/tags, /api/show, /api/chat).
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    # Where tenants reach the gateway: "127.0.0.1" (process runtime) or "docker" (a listener on the host's
    # address of each tenant's private network, refusing peers from elsewhere).
    bind_host: str = "127.0.0.1"
    port: int = 8081  # 0: any free port (tests)
    limits: TenantLimits = field(default_factory=TenantLimits)
    queue_per_tenant: int = 8  # waiting requests per tenant (beyond: 503)
    queue_total: int = 256
    queue_wait: float = 30.0  # seconds a request may wait for a slot (beyond: 503)
    health_interval: float = 10.0
    connect_timeout: float = 5.0
    # The shared speech services as the hosting service reaches them (tcp://HOST:PORT; empty: none), the
    # ports of each tenant's speech endpoints, and the connections a tenant may hold to each at once.
    stt_upstream: str = ""
    tts_upstream: str = ""
    stt_port: int = 10310
    tts_port: int = 10210
    speech_connections: int = 2
    conversation_retention_days: int = 30

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        default_url: str = "http://127.0.0.1:11434",
        default_model: str = DEFAULT_MODEL,
        default_api_key: str = "",
    ) -> GatewaySettings:
        """`default_*`: the service's own Ollama settings (MICROPI_OLLAMA_URL/_MODEL/_API_KEY) when the
        gateway's lists are not set."""
        env = os.environ if environ is None else environ

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def listed(name: str, default: str) -> tuple[str, ...]:
            return tuple(part.strip().rstrip("/") for part in text(name, default).split(",") if part.strip())

        def number[T: (int, float)](name: str, default: T, kind: type[T]) -> T:
            return env_number(env, name, default, kind)

        urls = listed("MICROPI_OLLAMA_URLS", default_url)
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"MICROPI_OLLAMA_URLS: {url!r} is not an http(s) URL")
        base = TenantLimits()
        return cls(
            backend_urls=urls,
            backend_api_key=env.get("MICROPI_OLLAMA_API_KEY", "").strip() or default_api_key,
            backend_slots=max(1, number("MICROPI_OLLAMA_SLOTS", 4, int)),
            models=listed("MICROPI_OLLAMA_MODELS", default_model),
            bind_host=text("MICROPI_GATEWAY_BIND_HOST", "127.0.0.1"),
            port=number("MICROPI_GATEWAY_PORT", 8081, int),
            limits=TenantLimits(
                concurrency=max(1, number("MICROPI_GATEWAY_CONCURRENCY", base.concurrency, int)),
                requests_per_minute=number("MICROPI_GATEWAY_REQUESTS_PER_MINUTE", base.requests_per_minute, int),
                tokens_per_day=number("MICROPI_GATEWAY_TOKENS_PER_DAY", base.tokens_per_day, int),
                max_num_ctx=number("MICROPI_GATEWAY_MAX_NUM_CTX", base.max_num_ctx, int),
                max_num_predict=number("MICROPI_GATEWAY_MAX_NUM_PREDICT", base.max_num_predict, int),
            ),
            queue_per_tenant=number("MICROPI_GATEWAY_QUEUE_PER_TENANT", 8, int),
            queue_total=number("MICROPI_GATEWAY_QUEUE_TOTAL", 256, int),
            queue_wait=number("MICROPI_GATEWAY_QUEUE_WAIT", 30.0, float),
            health_interval=max(0.5, number("MICROPI_GATEWAY_HEALTH_INTERVAL", 10.0, float)),
            stt_upstream=text("MICROPI_STT_UPSTREAM", ""),
            tts_upstream=text("MICROPI_TTS_UPSTREAM", ""),
            stt_port=number("MICROPI_SPEECH_STT_PORT", 10310, int),
            tts_port=number("MICROPI_SPEECH_TTS_PORT", 10210, int),
            speech_connections=max(1, number("MICROPI_SPEECH_CONNECTIONS", 2, int)),
            conversation_retention_days=max(1, number("MICROPI_CONVERSATION_RETENTION_DAYS", 30, int)),
        )
