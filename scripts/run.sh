#!/usr/bin/env bash
# The README's run command: sets up and starts the hosting service on this machine with its embedded
# defaults - SQLite and generated secrets in ./data (or $MICROPI_DATA), one local `hass` process per user
# (the `process` runtime), Ollama at $MICROPI_OLLAMA_URL (default http://127.0.0.1:11434).
#
#   bash scripts/run.sh                      # then open the app's URL it prints first, and follow the steps
#   MICROPI_PORT=9090 bash scripts/run.sh    # any MICROPI_* setting (hosting/settings.py) applies
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh

export MICROPI_DATA=${MICROPI_DATA:-$ROOT/data}
export MICROPI_OLLAMA_URL=${MICROPI_OLLAMA_URL:-http://127.0.0.1:11434}
export MICROPI_RUNTIME=${MICROPI_RUNTIME:-process}
# Trying it out: a new home comes with the demo devices unless the sign-up says "demo": false.
export MICROPI_DEMO_HOME=${MICROPI_DEMO_HOME:-true}
host=${MICROPI_HOST:-127.0.0.1}
port=${MICROPI_PORT:-8080}
range=${MICROPI_PORT_RANGE:-8200-8300}
public=${MICROPI_PUBLIC_HOST:-127.0.0.1}
base="http://$host:$port"

if ! .venv/bin/python -c '
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/api/version", timeout=3)
' "$MICROPI_OLLAMA_URL" 2>/dev/null; then
    printf '%s\n' \
        "run: note: no model server (Ollama) answers at $MICROPI_OLLAMA_URL. Everything below works without" \
        "     one: Home Assistant, the demo home, and the commands Home Assistant understands by itself (like" \
        "     the one below). Other sentences get a short spoken error until a server answers there; the" \
        "     assistant picks it up by itself, no restart. (Another address: set MICROPI_OLLAMA_URL. No CPU" \
        "     model is started for you; bench/README.md, \"An embedded model?\", says why.)" >&2
fi

if ! command -v ffmpeg >/dev/null 2>&1 || ! compgen -G "/usr/lib/*/libturbojpeg.so*" >/dev/null; then
    echo "run: note: ffmpeg or libturbojpeg is missing: each Home Assistant logs errors for its camera and" \
        "text-to-speech parts (all else works). As root, 'bash scripts/services.sh install' adds them." >&2
fi

printf '%s\n' \
    "" \
    "MicroPi web app: $base/   (open it in a browser: sign up, watch your Home Assistant being prepared)" \
    "" \
    "MicroPi hosting: $base   (data: $MICROPI_DATA, runtime: $MICROPI_RUNTIME)" \
    "" \
    "1. Sign up; the email and password also become your Home Assistant login. Add \"demo\": false for an" \
    "   empty home instead of the demo devices:" \
    "     curl -s -X POST $base/api/auth/signup -H 'Content-Type: application/json' \\" \
    "          -d '{\"email\": \"you@example.com\", \"password\": \"at least 10 characters\"}'" \
    "2. Wait until your Home Assistant is ready (usually well under a minute): until \"status\" says \"ready\"." \
    "     curl -s $base/api/me/instance -H \"Authorization: Bearer <tokens.access_token of the sign-up answer>\"" \
    "3. Open its \"url\" (http://$public:<port>, a port from $range) in a browser and log in with the same" \
    "   email and password." \
    "4. Open Assist (the speech-bubble button at the top right of the Overview) and type:" \
    "     Kapcsold fel a nappali lámpát" \
    "   The demo's \"Nappali lámpa\" turns on. The demo home is removed in one step: Settings > Devices &" \
    "   services > MicroPi demo home > Delete." \
    "" \
    "More: $base/api/openapi.json (the API), $base/health, $base/metrics." \
    "An operator account: .venv/bin/python -m hosting create-operator --email admin@example.com" \
    "Stop with Ctrl-C; the users' Home Assistants keep running and are adopted again at the next start." \
    ""
exec .venv/bin/python -m hosting
