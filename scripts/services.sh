#!/usr/bin/env bash
# Installs, from Debian's packages, the services that the tests start and stop themselves:
# PostgreSQL (hosting's production database) and dockerd (hosting's docker runtime).
#
#   bash scripts/services.sh install   # no-op when they are already there
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/*/bin/postgres ] 2>/dev/null || compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)

case "${1:-}" in
    install)
        [ ${#need[@]} -eq 0 ] && exit 0
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
        ;;
    *) echo "usage: $0 install" >&2; exit 2 ;;
esac
