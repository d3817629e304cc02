"""The production stack's files: compose.yaml as `docker compose` reads it, and the HA image's inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hosting.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
HA_VERSION = (ROOT / "images" / "ha" / "ha-version").read_text().strip()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """`docker compose config` of compose.yaml (it must accept the file), as JSON."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode:
        unavailable("no `docker compose`; run `bash scripts/services.sh install`")
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": "test-only",
        "MICROPI_JWT_SECRET": "x" * 40,
        "MICROPI_FERNET_KEY": "test-only",
        "MICROPI_HA_VERSION": HA_VERSION,
    }
    result = subprocess.run(
        ["docker", "compose", "--file", str(ROOT / "compose.yaml"), "--profile", "build", "--profile", "monitoring",
         "config", "--format", "json"],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"docker compose rejects compose.yaml:\n{result.stderr}"
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert {"postgres", "ollama", "ollama-pull", "hosting", "prometheus", "ha-image"} <= set(compose["services"])


def test_ollama_gets_the_gpu_and_keeps_models_on_a_volume(compose: dict[str, Any]) -> None:
    ollama = compose["services"]["ollama"]
    devices = ollama["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert any(v["type"] == "volume" and v["target"] == "/root/.ollama" for v in ollama["volumes"])


def test_the_default_model_is_pulled_once(compose: dict[str, Any]) -> None:
    pull = compose["services"]["ollama-pull"]
    assert pull["entrypoint"] == ["ollama", "pull", "ministral-3:3b-instruct-2512-q4_K_M"]
    assert pull["restart"] == "no"
    assert pull["depends_on"]["ollama"]["condition"] == "service_healthy"


def test_hosting_drives_docker_on_postgres(compose: dict[str, Any]) -> None:
    hosting = compose["services"]["hosting"]
    assert any(v["source"] == "/var/run/docker.sock" for v in hosting["volumes"])
    environment = hosting["environment"]
    assert environment["MICROPI_RUNTIME"] == "docker"
    assert environment["MICROPI_DATABASE_URL"].startswith("postgresql+asyncpg://")
    # Tenants reach the shared servers only through the gateway's per-network listeners, never a shared network.
    assert "MICROPI_DOCKER_NETWORK" not in environment
    assert environment["MICROPI_GATEWAY_BIND_HOST"] == "docker"
    for service in ("ollama", "whisper", "piper"):
        assert all(port["host_ip"] == "127.0.0.1" for port in compose["services"][service]["ports"])


def test_prometheus_is_optional(compose: dict[str, Any]) -> None:
    assert compose["services"]["prometheus"]["profiles"] == ["monitoring"]
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"


def test_the_ha_image_is_built_from_the_pinned_release(compose: dict[str, Any]) -> None:
    build = compose["services"]["ha-image"]["build"]
    assert build["args"]["HA_VERSION"] == HA_VERSION
    dockerfile = (ROOT / build["dockerfile"]).read_text()
    assert "FROM ghcr.io/home-assistant/home-assistant:${HA_VERSION}" in dockerfile
    assert "\nARG HA_VERSION\n" in dockerfile  # no second copy of the version as a default
    assert "HEALTHCHECK" in dockerfile


def test_the_default_configuration_loads_only_preinstalled_integrations() -> None:
    """Every integration configuration.yaml loads is in images/ha/integrations.txt, whose requirements
    setup.sh installs into .venv-ha (the process runtime runs hass with --skip-pip)."""
    config = yaml.safe_load((ROOT / "images" / "ha" / "config" / "configuration.yaml").read_text())
    listed = {
        line.strip()
        for line in (ROOT / "images" / "ha" / "integrations.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert set(config) - listed == set()
    assert "http" not in config  # HTTP settings are the runtime's (see hosting/runtime/process.py)
    assert "default_config" not in config
