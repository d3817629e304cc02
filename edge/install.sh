#!/usr/bin/env bash
# Installs the MicroPi voice satellite on a Raspberry Pi (Raspberry Pi OS, Debian 12+, Python 3.11+).
#
#   sudo bash edge/install.sh --server https://micropi.example --code ABCD-EFGH [--name "Living room"]
#
# What it does, each step repeatable:
#   1. apt: python3-venv and alsa-utils (arecord/aplay);
#   2. a system user `micropi` (in the `audio` group) and a virtual environment in /opt/micropi-edge
#      with this package (from this checkout) and the openWakeWord Wyoming service;
#   3. systemd units: micropi-wakeword (openWakeWord on 127.0.0.1:10400) and micropi-edge, both
#      restarting on failure; micropi-edge exits 3 when its device is revoked, and is then NOT restarted;
#   4. pairing: `micropi-edge pair CODE --server URL` as the micropi user; the token lands in
#      /var/lib/micropi-edge/device.json with 0600 permissions. Without --code it tells you how.
#
# Options: --server URL, --code CODE, --name NAME, --area AREA, --wake-word NAME (default ok_nabu),
#   --mic-command CMD, --snd-command CMD (defaults: arecord/aplay on the default ALSA device),
#   --no-wakeword (use a wake word service elsewhere: --wake-uri tcp://HOST:PORT).
# For tests and packaging: DESTDIR=/some/root writes everything below it and skips apt, useradd and
# systemctl; MICROPI_EDGE_BIN=/path/to/micropi-edge skips creating the virtual environment.
set -euo pipefail

SERVER="" CODE="" NAME="" AREA="" WAKE_WORD="ok_nabu" WAKE_URI="tcp://127.0.0.1:10400" WITH_WAKEWORD=1
MIC_COMMAND="arecord -q -D default -r 16000 -c 1 -f S16_LE -t raw"
SND_COMMAND="aplay -q -D default -r 16000 -c 1 -f S16_LE -t raw"
while [ $# -gt 0 ]; do
    case "$1" in
        --server) SERVER="$2"; shift 2 ;;
        --code) CODE="$2"; shift 2 ;;
        --name) NAME="$2"; shift 2 ;;
        --area) AREA="$2"; shift 2 ;;
        --wake-word) WAKE_WORD="$2"; shift 2 ;;
        --wake-uri) WAKE_URI="$2"; shift 2 ;;
        --no-wakeword) WITH_WAKEWORD=0; shift ;;
        --mic-command) MIC_COMMAND="$2"; shift 2 ;;
        --snd-command) SND_COMMAND="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

DESTDIR="${DESTDIR:-}"
SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX="$DESTDIR/opt/micropi-edge"
STATE_DIR="$DESTDIR/var/lib/micropi-edge"
UNIT_DIR="$DESTDIR/etc/systemd/system"
DEVICE_FILE="$STATE_DIR/device.json"
# Paths as the running system sees them (without DESTDIR), for the unit files.
RUN_PREFIX="/opt/micropi-edge"
RUN_DEVICE_FILE="/var/lib/micropi-edge/device.json"

as_root() {
    if [ -n "$DESTDIR" ]; then return 0; fi
    if [ "$(id -u)" -ne 0 ]; then echo "install.sh: run it with sudo" >&2; exit 1; fi
}
as_root

# 1. system packages
if [ -z "$DESTDIR" ]; then
    apt-get update -q
    apt-get install -y -q python3-venv alsa-utils
fi
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { echo "install.sh: Python 3.11 or newer is needed (Raspberry Pi OS 12 has it)" >&2; exit 1; }

# 2. user and virtual environment
if [ -z "$DESTDIR" ] && ! id micropi >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/micropi-edge --shell /usr/sbin/nologin --groups audio micropi
fi
install -d -m 0755 "$PREFIX"
install -d -m 0700 "$STATE_DIR"
if [ -z "$DESTDIR" ]; then chown micropi:micropi "$STATE_DIR"; fi
EDGE_BIN="${MICROPI_EDGE_BIN:-}"
if [ -z "$EDGE_BIN" ]; then
    python3 -m venv "$PREFIX/venv"
    "$PREFIX/venv/bin/pip" install -q --upgrade pip
    "$PREFIX/venv/bin/pip" install -q "$SOURCE_DIR"
    if [ "$WITH_WAKEWORD" = 1 ]; then
        "$PREFIX/venv/bin/pip" install -q wyoming-openwakeword
    fi
    EDGE_BIN="$PREFIX/venv/bin/micropi-edge"
    RUN_EDGE_BIN="$RUN_PREFIX/venv/bin/micropi-edge"
else
    RUN_EDGE_BIN="$EDGE_BIN"
fi

# 3. systemd units
install -d -m 0755 "$UNIT_DIR"
RUN_ARGS="--wake-uri $WAKE_URI --wake-word $WAKE_WORD"
[ -n "$AREA" ] && RUN_ARGS="$RUN_ARGS --area '$AREA'"
cat >"$UNIT_DIR/micropi-edge.service" <<EOF
[Unit]
Description=MicroPi voice satellite (Wyoming satellite + relay to your hosted Home Assistant)
After=network-online.target sound.target micropi-wakeword.service
Wants=network-online.target

[Service]
User=micropi
Group=audio
Environment=MICROPI_EDGE_CONFIG=$RUN_DEVICE_FILE
ExecStart=$RUN_EDGE_BIN run $RUN_ARGS --mic-command '$MIC_COMMAND' --snd-command '$SND_COMMAND'
Restart=on-failure
RestartSec=5
# Exit status 3: the device was revoked in the owner's account; restarting cannot help. Pair again.
RestartPreventExitStatus=3
NoNewPrivileges=true
ProtectSystem=strict
ReadWritePaths=/var/lib/micropi-edge

[Install]
WantedBy=multi-user.target
EOF
if [ "$WITH_WAKEWORD" = 1 ]; then
    cat >"$UNIT_DIR/micropi-wakeword.service" <<EOF
[Unit]
Description=openWakeWord Wyoming service for the MicroPi satellite
After=network.target

[Service]
User=micropi
ExecStart=$RUN_PREFIX/venv/bin/wyoming-openwakeword --uri tcp://127.0.0.1:10400 --preload-model $WAKE_WORD
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
fi

# 4. pairing
if [ -n "$CODE" ]; then
    if [ -z "$SERVER" ]; then echo "install.sh: --code needs --server URL" >&2; exit 2; fi
    PAIR=("$EDGE_BIN" --config "$DEVICE_FILE" pair "$CODE" --server "$SERVER")
    [ -n "$NAME" ] && PAIR+=(--name "$NAME")
    if [ -z "$DESTDIR" ]; then
        runuser -u micropi -- "${PAIR[@]}"
    else
        "${PAIR[@]}"
    fi
fi

if [ -z "$DESTDIR" ]; then
    systemctl daemon-reload
    [ "$WITH_WAKEWORD" = 1 ] && systemctl enable --now micropi-wakeword.service
    if [ -f "$DEVICE_FILE" ]; then
        systemctl enable --now micropi-edge.service
        echo "MicroPi satellite installed and running: journalctl -u micropi-edge -f"
    else
        systemctl enable micropi-edge.service
        echo "Installed. Get a pairing code in your MicroPi account, then run:"
        echo "  sudo runuser -u micropi -- $RUN_EDGE_BIN --config $RUN_DEVICE_FILE pair CODE --server URL"
        echo "  sudo systemctl start micropi-edge"
    fi
fi
