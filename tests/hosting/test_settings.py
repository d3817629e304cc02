"""Settings from the environment: safe defaults, secrets generated once and kept 0600, clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hosting.security import SecretBox
from hosting.settings import Settings, SettingsError


def test_embedded_defaults_generate_and_keep_secrets(tmp_path: Path) -> None:
    env = {"MICROPI_DATA": str(tmp_path / "data")}
    first = Settings.from_env(env)
    assert first.effective_database_url == f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'hosting.db').resolve()}"
    assert first.runtime == "process"
    assert first.port_range == (8200, 8300)
    assert first.host == "127.0.0.1"  # loopback unless told otherwise
    assert first.cors_origins == ()
    assert first.demo_home is False  # production's default; scripts/run.sh turns it on for a try-out
    for name in ("jwt_secret", "fernet.key"):
        mode = stat.S_IMODE((tmp_path / "data" / name).stat().st_mode)
        assert mode == 0o600, name
    SecretBox(first.fernet_key)  # a usable key
    assert len(first.jwt_secret) >= 32
    second = Settings.from_env(env)
    assert (second.jwt_secret, second.fernet_key) == (first.jwt_secret, first.fernet_key)
    assert first.jwt_secret not in repr(first)  # secrets never end up in logs through repr


def test_production_values_from_the_environment(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    settings = Settings.from_env(
        {
            "MICROPI_DATA": str(tmp_path),
            "MICROPI_DATABASE_URL": "postgresql+asyncpg://micropi@db/micropi",
            "MICROPI_JWT_SECRET": "s" * 40,
            "MICROPI_FERNET_KEY": key,
            "MICROPI_RUNTIME": "docker",
            "MICROPI_PORT_RANGE": "9000-9009",
            "MICROPI_CORS_ORIGINS": "https://a.example.com/, https://b.example.com",
            "MICROPI_PROVISIONING": "false",
            "MICROPI_DEMO_HOME": "true",
        }
    )
    assert settings.effective_database_url == "postgresql+asyncpg://micropi@db/micropi"
    assert settings.jwt_secret == "s" * 40
    assert settings.fernet_key == key
    assert settings.runtime == "docker"
    assert settings.port_range == (9000, 9009)
    assert settings.cors_origins == ("https://a.example.com", "https://b.example.com")
    assert settings.provisioning_enabled is False
    assert settings.demo_home is True
    assert not (tmp_path / "jwt_secret").exists()  # nothing generated when the environment has it


@pytest.mark.parametrize(
    ("name", "value", "mentioned"),
    [
        ("MICROPI_PORT", "eighty", "MICROPI_PORT"),
        ("MICROPI_PORT_RANGE", "9000", "FIRST-LAST"),
        ("MICROPI_PORT_RANGE", "9010-9000", "FIRST <= LAST"),
        ("MICROPI_RUNTIME", "kubernetes", "process"),
        ("MICROPI_JWT_SECRET", "short", "32"),
        ("MICROPI_FERNET_KEY", "not-a-key", "Fernet.generate_key"),
        ("MICROPI_PROVISIONING", "maybe", "true or false"),
        ("MICROPI_DEMO_HOME", "sure", "true or false"),
        ("MICROPI_ACCESS_TOKEN_TTL", "-5", "negative"),
    ],
)
def test_bad_values_say_what_to_do(tmp_path: Path, name: str, value: str, mentioned: str) -> None:
    with pytest.raises(SettingsError, match=mentioned):
        Settings.from_env({"MICROPI_DATA": str(tmp_path), name: value})


def test_an_emptied_secret_file_is_an_error_not_a_new_secret(tmp_path: Path) -> None:
    Settings.from_env({"MICROPI_DATA": str(tmp_path)})
    (tmp_path / "jwt_secret").write_text("")
    with pytest.raises(SettingsError, match="empty"):
        Settings.from_env({"MICROPI_DATA": str(tmp_path)})


def test_device_values_from_the_environment(tmp_path: Path) -> None:
    defaults = Settings.from_env({"MICROPI_DATA": str(tmp_path)})
    assert (defaults.relay_bind_host, defaults.relay_ha_host, defaults.relay_ports) == (
        "127.0.0.1",
        "127.0.0.1",
        (10700, 10999),
    )
    assert defaults.tts_voices == {"hu": "hu_HU-anna-medium", "en": "en_US-joe-medium"}
    settings = Settings.from_env(
        {
            "MICROPI_DATA": str(tmp_path),
            "MICROPI_RELAY_BIND_HOST": "docker",  # the HA dials what the runtime says, unless told otherwise
            "MICROPI_RELAY_PORT_RANGE": "0",
            "MICROPI_DEVICE_SILENT_AFTER": "5",
            "MICROPI_STT_URI": "tcp://whisper:10300",
            "MICROPI_TTS_VOICES": "hu=hu_HU-anna-medium, de=de_DE-thorsten-medium",
        }
    )
    assert (settings.relay_bind_host, settings.relay_ha_host, settings.relay_ports) == ("docker", "docker", None)
    assert settings.device_silent_after == 5.0
    assert settings.stt_uri == "tcp://whisper:10300"
    assert settings.tts_voices == {"hu": "hu_HU-anna-medium", "de": "de_DE-thorsten-medium"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MICROPI_RELAY_PORT_RANGE", "10700", "FIRST-LAST"),
        ("MICROPI_DEVICE_SILENT_AFTER", "soon", "number of seconds"),
        ("MICROPI_TTS_VOICES", "hu", "LANGUAGE=VOICE"),
    ],
)
def test_bad_device_values_say_what_to_set(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"MICROPI_DATA": str(tmp_path), name: value})
