#!/usr/bin/env bash
# The README's run command: sets up and starts the hosting service on this machine with its embedded
# defaults - SQLite and generated secrets in ./data (or $MICROPI_DATA), one local `hass` process per user
# (the `process` runtime), Ollama at $MICROPI_OLLAMA_URL (default http://127.0.0.1:11434).
#
#   bash scripts/run.sh                      # then sign up with the curl line it prints
#   MICROPI_PORT=9090 bash scripts/run.sh    # any MICROPI_* setting (hosting/settings.py) applies
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh

export MICROPI_DATA=${MICROPI_DATA:-$ROOT/data}
export MICROPI_OLLAMA_URL=${MICROPI_OLLAMA_URL:-http://127.0.0.1:11434}
export MICROPI_RUNTIME=${MICROPI_RUNTIME:-process}
host=${MICROPI_HOST:-127.0.0.1}
port=${MICROPI_PORT:-8080}
range=${MICROPI_PORT_RANGE:-8200-8300}
public=${MICROPI_PUBLIC_HOST:-127.0.0.1}
base="http://$host:$port"

if ! .venv/bin/python -c '
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/api/version", timeout=3)
' "$MICROPI_OLLAMA_URL" 2>/dev/null; then
    echo "run: note: no Ollama answers at $MICROPI_OLLAMA_URL; sign-ups still work, and each user's agent" >&2
    echo "     answers once Ollama is reachable there (or set MICROPI_OLLAMA_URL and start again)." >&2
fi

printf '%s\n' \
    "" \
    "MicroPi hosting: $base   (data: $MICROPI_DATA, runtime: $MICROPI_RUNTIME)" \
    "" \
    "Sign up (the email and password also become your Home Assistant login):" \
    "  curl -s -X POST $base/api/auth/signup -H 'Content-Type: application/json' \\" \
    "       -d '{\"email\": \"you@example.com\", \"password\": \"at least 10 characters\"}'" \
    "" \
    "Your Home Assistant will be at http://$public:<port>, a port from $range: the sign-up answer's" \
    "\"instance.url\". It is ready when its status says \"ready\" (a minute or two after sign-up):" \
    "  curl -s $base/api/me/instance -H \"Authorization: Bearer <tokens.access_token of the sign-up answer>\"" \
    "" \
    "More: $base/api/openapi.json (the API), $base/health, $base/metrics." \
    "An operator account: .venv/bin/python -m hosting create-operator --email admin@example.com" \
    "Stop with Ctrl-C; the users' Home Assistants keep running and are adopted again at the next start." \
    ""
exec .venv/bin/python -m hosting
