"""Proves the project's interpreter works: ssl, sqlite3, ctypes and subprocesses.

Run by scripts/setup.sh after every set-up; exits non-zero with a message that says what broke.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sqlite3
import ssl
import subprocess
import sys


def main() -> int:
    problems: list[str] = []
    try:
        ssl.create_default_context().load_default_certs()
    except Exception as err:
        problems.append(f"ssl: {err!r} (the OpenSSL library or CA certificates are not usable)")
    try:
        sqlite3.connect(":memory:").execute("select sqlite_version()").fetchone()
    except Exception as err:
        problems.append(f"sqlite3: {err!r}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if libc.getpid() <= 0:
            problems.append("ctypes: getpid() through libc returned nonsense")
    except Exception as err:
        problems.append(f"ctypes: {err!r}")
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import ssl, sqlite3; print('ok')"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()
        if out != "ok":
            problems.append(f"subprocess of sys.executable printed {out!r}, not 'ok'")
        # A host program must run with the host's own libc (no LD_LIBRARY_PATH leaking into it).
        subprocess.run(["sh", "-c", "true"], check=True, timeout=30)
    except Exception as err:
        problems.append(f"subprocess: {err!r}")
    if problems:
        print("selftest: the Python environment is broken:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Remove .venv (and ~/.cache/micropi/sid if used) and run scripts/setup.sh again.", file=sys.stderr)
        return 1
    print(f"selftest: Python {sys.version.split()[0]} ok (ssl {ssl.OPENSSL_VERSION}, sqlite {sqlite3.sqlite_version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
