"""A private dockerd for the docker runtime's tests, and a small stand-in for the HA image.

The daemon gets its own config file, data-root, exec-root, pid file and socket under a temporary
directory, no default bridge and no iptables/forwarding changes, so it never touches another docker on
the machine. No registry is reachable, so the image is built `FROM scratch` out of Debian's static
busybox: `httpd` answers on 8123 like HA does on the paths the runtime checks, and every boot appends
a line to /config/boots (so a test can see the volume outlive a container).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

from tests.hosting.conftest import unavailable

DOCKERD = "/usr/sbin/dockerd"
BUSYBOX = "/bin/busybox"  # Debian's busybox-static (scripts/services.sh installs it)
STAND_IN_IMAGE = "micropi-test/ha-stand-in:1"
STAND_IN_IMAGE_2 = "micropi-test/ha-stand-in:2"

_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY www /www
VOLUME /config
EXPOSE 8123
LABEL stand-in-version={version}
CMD ["/bin/sh", "-c", "mkdir -p /config && echo {version} >> /config/boots && exec httpd -f -p 8123 -h /www"]
"""


@contextlib.contextmanager
def private_dockerd() -> Iterator[str]:
    """Start a private dockerd; yields its `unix://` URL; stops it and removes its state after."""
    if not Path(DOCKERD).exists():
        unavailable(f"{DOCKERD} is not installed")
    if os.geteuid() != 0:
        unavailable("dockerd needs root")
    # A short path: unix socket paths are limited to 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="mp-dockerd-", dir="/tmp"))
    config = base / "daemon.json"
    config.write_text(
        json.dumps(
            {
                "exec-opts": ["native.cgroupdriver=cgroupfs"],
                "storage-driver": "overlay2",
                "bridge": "none",
                "iptables": False,
                "ip-forward": False,
                "ip-masq": False,
            }
        )
    )
    socket = base / "docker.sock"
    log = (base / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        [
            DOCKERD,
            "--config-file", str(config),
            "--data-root", str(base / "data"),
            "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "dockerd.pid"),
            "--host", f"unix://{socket}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"unix://{socket}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if daemon.poll() is not None:
                unavailable(f"dockerd exited at start: {(base / 'dockerd.log').read_text()[-2000:]}")
            with contextlib.suppress(docker.errors.DockerException):
                client = docker.DockerClient(base_url=url, version="auto")
                client.ping()
                client.close()
                break
            if time.monotonic() > deadline:
                unavailable(f"dockerd did not answer in 60 s: {(base / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            client = docker.DockerClient(base_url=url, version="auto")
            for container in client.containers.list(all=True):
                container.remove(force=True)
            client.close()
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def build_stand_in_images(url: str) -> None:
    """Build the two versions of the stand-in HA image (two, so an upgrade has somewhere to go)."""
    if not Path(BUSYBOX).exists():
        unavailable(f"{BUSYBOX} is missing (Debian's busybox-static)")
    client = docker.DockerClient(base_url=url, version="auto")
    try:
        for version, tag in ((1, STAND_IN_IMAGE), (2, STAND_IN_IMAGE_2)):
            with tempfile.TemporaryDirectory() as context:
                root = Path(context)
                shutil.copy2(BUSYBOX, root / "busybox")
                (root / "www").mkdir()
                (root / "www" / "manifest.json").write_text(json.dumps({"name": "Home Assistant stand-in"}))
                (root / "Dockerfile").write_text(_DOCKERFILE.format(version=version))
                client.images.build(path=context, tag=tag, rm=True)
    finally:
        client.close()
