"""The hosting service's configuration: one dataclass, read from environment variables with safe defaults.

Embedded default (nothing set): everything lives in a data directory (`./data`, or `$MICROPI_DATA`):
a SQLite database, and a JWT secret and a Fernet key generated on first start and kept there with 0600
permissions. Production sets `MICROPI_DATABASE_URL=postgresql+asyncpg://...`, `MICROPI_JWT_SECRET` and
`MICROPI_FERNET_KEY` (from a secret store) instead.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from hosting.runtime.registry import RUNTIME_NAMES

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A configuration value is unusable; the message names the variable and what to set."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: the embedded SQLite file in data_dir
    jwt_secret: str = field(default="", repr=False)
    fernet_key: str = field(default="", repr=False)

    host: str = "127.0.0.1"
    port: int = 8080
    # Seconds aiohttp gives in-flight requests to finish on shutdown.
    shutdown_timeout: float = 30.0

    access_token_ttl: int = 900  # seconds; short-lived by design, the refresh token renews it
    refresh_token_ttl: int = 30 * 24 * 3600
    cors_origins: tuple[str, ...] = ()
    # Reverse proxies whose X-Forwarded-For / Forwarded headers name the client (addresses or CIDRs). From any
    # other peer those headers are ignored: the peer itself is the client.
    trusted_proxies: tuple[IPNetwork, ...] = ()

    # Sliding-window rate limits over `rate_limit_window` seconds (hosting.ratelimit says why these three).
    rate_limit_window: float = 60.0
    login_limit_per_ip: int = 30  # failed logins per client address
    login_limit_per_account: int = 10  # failed logins per (client address, account)
    login_limit_per_account_unknown: int = 20  # failed logins per account from addresses it never logged in from
    signup_limit_per_ip: int = 10
    signup_limit_per_account: int = 5

    # argon2id cost for password hashes (argon2-cffi's defaults, RFC 9106 low-memory profile).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4

    # One HA per user (used by hosting.instances / hosting.runtime).
    provisioning_enabled: bool = True
    runtime: str = "process"  # a name in hosting.runtime.registry: "process" (default, local `hass`) or "docker"
    port_range: tuple[int, int] = (8200, 8300)
    public_host: str = "127.0.0.1"  # host name users reach their HA at: http://<public_host>:<port>
    ha_image: str = "micropi/ha:2026.11"
    ha_memory: str = "512m"
    ha_cpus: float = 0.5
    hass_command: str = ""  # empty: .venv-ha/bin/hass next to the project, else `hass` on PATH
    ollama_url: str = "http://127.0.0.1:11434"
    ollama_api_key: str = field(default="", repr=False)
    ollama_model: str = "ministral-3:3b-instruct-2512-q4_K_M"
    time_zone: str = "Europe/Budapest"
    # Whether a sign-up that does not say gets the demo home (a few simulated devices to try Assist on):
    # on in the embedded run command (scripts/run.sh), off in production (compose.yaml).
    demo_home: bool = False
    reconcile_interval: float = 30.0
    # Seconds between two samples of the operators' metrics history (hosting.history).
    history_interval: float = 15.0

    # Edge devices (hosting.devices). Where device relay endpoints listen and the address the owner's HA
    # dials; "docker" (production): where the runtime binds tenant-facing endpoints (`Runtime.tenant_endpoint`:
    # the host's gateway address on the owner's private network, refusing peers from outside it).
    relay_bind_host: str = "127.0.0.1"
    relay_ha_host: str = "127.0.0.1"
    relay_ports: tuple[int, int] | None = (10700, 10999)  # None: any free port (tests)
    device_silent_after: float = 120.0  # a device without a heartbeat for this long is flagged
    device_monitor_interval: float = 30.0
    pairing_code_ttl: float = 600.0
    # Per account: open pairing codes at once, and paired devices. Relay ports are a shared pool; no
    # household may empty it (a household has a few satellites, not hundreds).
    max_open_pairing_codes: int = 5
    max_devices_per_account: int = 10
    stt_uri: str = ""  # tcp://host:port of the central Wyoming faster-whisper; empty: no STT in the pipeline
    tts_uri: str = ""  # tcp://host:port of the central Wyoming piper
    conversation_agent: str = "conversation.micropi"
    # Piper voice per language, as installed in the central piper service (compose.yaml).
    tts_voices: Mapping[str, str] = field(default_factory=lambda: {"hu": "hu_HU-anna-medium", "en": "en_US-joe-medium"})

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'hosting.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `MICROPI_*` variables; secrets missing from the environment are generated into the data dir."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("MICROPI_DATA", "data"))

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def number[T: (int, float)](name: str, default: T, kind: type[T]) -> T:
            return env_number(env, name, default, kind)

        def flag(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw in {"1", "true", "yes", "on"}:
                return True
            if raw in {"0", "false", "no", "off"}:
                return False
            raise SettingsError(f"{name}={raw!r} is not a boolean; use true or false")

        runtime = text("MICROPI_RUNTIME", "process")
        if runtime not in RUNTIME_NAMES:
            raise SettingsError(f"MICROPI_RUNTIME={runtime!r}: use {' or '.join(map(repr, RUNTIME_NAMES))}")
        relay_bind_host = text("MICROPI_RELAY_BIND_HOST", "127.0.0.1")

        jwt_secret = env.get("MICROPI_JWT_SECRET", "").strip()
        if jwt_secret and len(jwt_secret) < 32:
            raise SettingsError("MICROPI_JWT_SECRET is shorter than 32 characters; use a long random value")
        fernet_key = env.get("MICROPI_FERNET_KEY", "").strip()
        if fernet_key:
            _check_fernet_key(fernet_key, "MICROPI_FERNET_KEY")

        return cls(
            data_dir=data_dir,
            database_url=text("MICROPI_DATABASE_URL", ""),
            jwt_secret=jwt_secret or load_or_create_secret(data_dir / "jwt_secret", lambda: secrets.token_urlsafe(48)),
            fernet_key=fernet_key
            or load_or_create_secret(data_dir / "fernet.key", lambda: Fernet.generate_key().decode()),
            host=text("MICROPI_HOST", "127.0.0.1"),
            port=number("MICROPI_PORT", 8080, int),
            shutdown_timeout=number("MICROPI_SHUTDOWN_TIMEOUT", 30.0, float),
            access_token_ttl=number("MICROPI_ACCESS_TOKEN_TTL", 900, int),
            refresh_token_ttl=number("MICROPI_REFRESH_TOKEN_TTL", 30 * 24 * 3600, int),
            cors_origins=tuple(
                o.strip().rstrip("/") for o in env.get("MICROPI_CORS_ORIGINS", "").split(",") if o.strip()
            ),
            trusted_proxies=_networks("MICROPI_TRUSTED_PROXIES", env.get("MICROPI_TRUSTED_PROXIES", "")),
            rate_limit_window=number("MICROPI_RATE_LIMIT_WINDOW", 60.0, float),
            login_limit_per_ip=number("MICROPI_LOGIN_LIMIT_PER_IP", 30, int),
            login_limit_per_account=number("MICROPI_LOGIN_LIMIT_PER_ACCOUNT", 10, int),
            login_limit_per_account_unknown=number("MICROPI_LOGIN_LIMIT_PER_ACCOUNT_UNKNOWN", 20, int),
            signup_limit_per_ip=number("MICROPI_SIGNUP_LIMIT_PER_IP", 10, int),
            signup_limit_per_account=number("MICROPI_SIGNUP_LIMIT_PER_ACCOUNT", 5, int),
            argon2_time_cost=max(1, number("MICROPI_ARGON2_TIME_COST", 3, int)),
            argon2_memory_kib=max(64, number("MICROPI_ARGON2_MEMORY_KIB", 65536, int)),
            argon2_parallelism=max(1, number("MICROPI_ARGON2_PARALLELISM", 4, int)),
            provisioning_enabled=flag("MICROPI_PROVISIONING", True),
            runtime=runtime,
            port_range=_port_range(text("MICROPI_PORT_RANGE", "8200-8300")),
            public_host=text("MICROPI_PUBLIC_HOST", "127.0.0.1"),
            ha_image=text("MICROPI_HA_IMAGE", "micropi/ha:2026.11"),
            ha_memory=text("MICROPI_HA_MEMORY", "512m"),
            ha_cpus=number("MICROPI_HA_CPUS", 0.5, float),
            hass_command=text("MICROPI_HASS", ""),
            ollama_url=text("MICROPI_OLLAMA_URL", "http://127.0.0.1:11434"),
            ollama_api_key=env.get("MICROPI_OLLAMA_API_KEY", "").strip(),
            ollama_model=text("MICROPI_OLLAMA_MODEL", "ministral-3:3b-instruct-2512-q4_K_M"),
            time_zone=text("MICROPI_TIME_ZONE", "Europe/Budapest"),
            demo_home=flag("MICROPI_DEMO_HOME", False),
            reconcile_interval=number("MICROPI_RECONCILE_INTERVAL", 30.0, float),
            history_interval=max(0.1, number("MICROPI_HISTORY_INTERVAL", 15.0, float)),
            relay_bind_host=relay_bind_host,
            relay_ha_host=text("MICROPI_RELAY_HA_HOST", relay_bind_host),
            relay_ports=_relay_ports(text("MICROPI_RELAY_PORT_RANGE", "10700-10999")),
            max_open_pairing_codes=number("MICROPI_MAX_OPEN_PAIRING_CODES", 5, int),
            max_devices_per_account=number("MICROPI_MAX_DEVICES_PER_ACCOUNT", 10, int),
            device_silent_after=_seconds(text("MICROPI_DEVICE_SILENT_AFTER", "120"), "MICROPI_DEVICE_SILENT_AFTER"),
            stt_uri=text("MICROPI_STT_URI", ""),
            tts_uri=text("MICROPI_TTS_URI", ""),
            conversation_agent=text("MICROPI_CONVERSATION_AGENT", "conversation.micropi"),
            tts_voices=_voices(text("MICROPI_TTS_VOICES", "hu=hu_HU-anna-medium,en=en_US-joe-medium")),
        )


def _networks(name: str, raw: str) -> tuple[IPNetwork, ...]:
    networks = []
    for part in raw.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(
                f"{name}: {part!r} is not an IP address or CIDR; use e.g. 127.0.0.1,::1,10.0.0.0/8"
            ) from None
    return tuple(networks)


def env_number[T: (int, float)](env: Mapping[str, str], name: str, default: T, kind: type[T]) -> T:
    """The non-negative number in variable `name`, `default` when unset; SettingsError saying what to set."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}; set a number or unset it") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    return value


def _port_range(raw: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in raw.split("-", 1))
    except ValueError:
        raise SettingsError(f"MICROPI_PORT_RANGE={raw!r}: use FIRST-LAST, e.g. 8200-8300") from None
    if not 1024 <= low <= high <= 65535:
        raise SettingsError(f"MICROPI_PORT_RANGE={raw!r}: need 1024 <= FIRST <= LAST <= 65535")
    return low, high


def _relay_ports(raw: str) -> tuple[int, int] | None:
    if raw == "0":
        return None
    try:
        low, high = (int(p) for p in raw.split("-", 1))
    except ValueError:
        raise SettingsError(f"MICROPI_RELAY_PORT_RANGE={raw!r}: use FIRST-LAST (or 0 for any)") from None
    return low, high


def _seconds(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None


def _voices(raw: str) -> dict[str, str]:
    voices = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        language, _, voice = item.partition("=")
        if not language.strip() or not voice.strip():
            raise SettingsError(f"MICROPI_TTS_VOICES={raw!r}: use LANGUAGE=VOICE,... e.g. hu=hu_HU-anna-medium")
        voices[language.strip()] = voice.strip()
    return voices


def _check_fernet_key(key: str, where: str) -> None:
    try:
        if len(base64.urlsafe_b64decode(key.encode())) != 32:
            raise ValueError
    except ValueError:
        raise SettingsError(
            f"{where} is not a Fernet key (32 url-safe base64 bytes); make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        ) from None


def load_or_create_secret(path: Path, generate: Callable[[], str]) -> str:
    """The secret kept in `path`; made on first start, readable by the owner only (0600)."""
    if path.exists():
        value = path.read_text().strip()
        if not value:
            raise SettingsError(f"{path} is empty; delete it to have a new secret generated")
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate()
    # O_EXCL: two processes starting at once never overwrite each other's fresh secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_secret(path, generate)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
