#!/usr/bin/env bash
# Installs, from Debian's packages, the services that the tests start and stop themselves:
# PostgreSQL (hosting's production database) and dockerd (hosting's docker runtime); also
# busybox-static (the docker tests' stand-in HA image is built from its one static binary) and the
# Chromium with its WebDriver (the browser tests drive Debian's own build; no browser download), and the
# `docker compose` v2 CLI plugin (the compose.yaml test), taken from Debian sid (it needs only libc6
# >= 2.34) with a private apt state and unpacked into ~/.docker/cli-plugins, the host untouched.
# And what Home Assistant's own image carries for the integrations every HA loads (ffmpeg for ffmpeg,
# stream and text-to-speech; libturbojpeg for camera snapshots), so a local `hass` starts as cleanly.
# Node.js's npm then installs what the browser tests load into the pages (axe-core, tests/web/package.json)
# from the npm registry into tests/web/node_modules.
#
#   bash scripts/services.sh install   # no-op when they are already there
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
dpkg -s libturbojpeg0 >/dev/null 2>&1 || need+=(libturbojpeg0)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)

# shellcheck source=scripts/debian-sid.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-sid.sh"
COMPOSE_PLUGIN=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose
install_compose_plugin() {
    [ -x "$COMPOSE_PLUGIN" ] && return 0
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
        echo "services: no docker compose plugin; install it (https://docs.docker.com/compose/install/)" >&2
        return 1
    }
    local cache=${MICROPI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/micropi}/compose work
    echo "services: fetching the docker compose plugin from Debian sid" >&2
    # Called in an `||` list, where `set -e` does not apply: every step checks for itself.
    mkdir -p "$cache" && work=$(mktemp -d "$cache/work.XXXXXX") || return 1
    sid_download "$cache" "$work" docker-compose && (cd "$work" && dpkg-deb -x docker-compose_*.deb root) \
        && mkdir -p "$(dirname "$COMPOSE_PLUGIN")" \
        && install -m 0755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" "$COMPOSE_PLUGIN"
    local status=$?
    rm -rf "$work"
    return $status
}

WEB_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/web" && pwd)
install_npm_packages() {  # `npm ci` from the lock file, again only when package(-lock).json changed
    local stamp
    stamp=$(cat "$WEB_TESTS/package.json" "$WEB_TESTS/package-lock.json" | sha256sum | cut -d' ' -f1)
    grep -qx "$stamp" "$WEB_TESTS/node_modules/.micropi-stamp" 2>/dev/null && return 0
    echo "services: installing the browser tests' npm packages (axe-core) into tests/web/node_modules" >&2
    npm ci --prefix "$WEB_TESTS" --no-audit --no-fund --loglevel=error >/dev/null \
        && echo "$stamp" >"$WEB_TESTS/node_modules/.micropi-stamp"
}

case "${1:-}" in
    install)
        # Only the compose.yaml test needs it: a failure here is reported, not fatal.
        install_compose_plugin || echo "services: could not install the docker compose plugin" >&2
        if [ ${#need[@]} -eq 0 ]; then
            install_npm_packages
            exit 0
        fi
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
            echo "services: missing ${need[*]}; install them (Debian: apt-get install ${need[*]}) and run again" >&2
            exit 1
        fi
        echo "services: installing ${need[*]} from Debian's packages" >&2
        apt-get -qq update
        # The packages' own start-up scripts are kept from starting the services: the tests start them.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends "${need[@]}" >/dev/null
        rm -f /usr/sbin/policy-rc.d
        install_npm_packages
        ;;
    *) echo "usage: $0 install" >&2; exit 2 ;;
esac
