#!/usr/bin/env bash
# Sets up everything and runs every check: lint, types, all tests (with the integration's coverage).
#
#   bash scripts/check.sh            # the README's test command; .ci/run calls exactly this
#   bash scripts/check.sh -k flow    # extra arguments go to both pytest runs
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh
bash scripts/services.sh install
PY=.venv/bin/python

# Test folders that hold tests; a folder with none yet is left out rather than failing the run.
with_tests() { for d in "$@"; do compgen -G "$d/test_*.py" >/dev/null && echo "$d"; done; true; }

echo "== ruff"
$PY -m ruff check .
echo "== mypy"
$PY -m mypy

status=0
# Home Assistant's pytest plugin blocks sockets and aliases voluptuous to probatio for the whole
# process, so the tests that run inside HA core and those of the standalone services run apart.
mapfile -t ha_dirs < <(with_tests tests/micropi_llm tests/bench)
mapfile -t service_dirs < <(with_tests tests/hosting tests/edge tests/web)
if [ ${#ha_dirs[@]} -gt 0 ]; then
    echo "== pytest (inside Home Assistant core): ${ha_dirs[*]}"
    $PY -m pytest --timeout=600 --cov=custom_components/micropi_llm --cov-report=term-missing:skip-covered --cov-fail-under=95 \
        "${ha_dirs[@]}" "$@" || status=$?
fi
if [ ${#service_dirs[@]} -gt 0 ]; then
    echo "== pytest (services): ${service_dirs[*]}"
    $PY -m pytest -p no:homeassistant --timeout=600 "${service_dirs[@]}" "$@" || status=$?
fi
exit $status
