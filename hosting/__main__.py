"""`python -m hosting` runs the service; `python -m hosting create-operator --email E` makes an operator.

Configuration comes from `MICROPI_*` environment variables (see hosting/settings.py).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys

import voluptuous as vol
from aiohttp import web
from sqlalchemy import select

from hosting import audit
from hosting.api.schemas import email_address, new_password
from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import OPERATOR_ROLE, User
from hosting.security import Passwords
from hosting.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosting", description="MicroPi hosting service")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    operator = commands.add_parser(
        "create-operator", help="create an operator account (or promote an existing account)"
    )
    operator.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    if args.command == "create-operator":
        return create_operator(settings, args.email)
    from hosting.app import create_app  # noqa: PLC0415  # only the service needs the whole application
    from hosting.middleware import AccessLogger  # noqa: PLC0415

    where = f"http://{settings.host}:{settings.port}"
    print(f"MicroPi hosting on {where} (data: {settings.data_dir.resolve()})", flush=True)
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            shutdown_timeout=settings.shutdown_timeout,
            access_log_class=AccessLogger,
            print=None,
        )
    except SettingsError as err:  # the gateway's settings, read with the app, or its ports taken at start
        print(f"configuration error: {err}", file=sys.stderr, flush=True)
        # A failure inside aiohttp's start-up leaves the contexts started before it (the database's worker
        # threads) to the interpreter's exit, which would wait on them; nothing is left to save.
        os._exit(2)
    return 0


def create_operator(settings: Settings, raw_email: str) -> int:
    try:
        email = email_address(raw_email)
        password = new_password(_read_password())
    except vol.Invalid as err:
        print(f"error: {err.msg}", file=sys.stderr)
        return 2
    message = asyncio.run(_create_operator(settings, email, password))
    print(message)
    return 0


def _read_password() -> str:
    """From stdin when piped (`echo ... | python -m hosting create-operator`), else a prompt asked twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password (10+ characters): ")
    if getpass.getpass("Again: ") != password:
        raise vol.Invalid("the two passwords differ; run the command again")
    return password


async def _create_operator(settings: Settings, email: str, password: str) -> str:
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine)
        password_hash = await Passwords.from_settings(settings).hash(password)
        async with session_factory(engine)() as session, session.begin():
            user = await session.scalar(select(User).where(User.email == email, User.deleted_at.is_(None)))
            if user is not None:
                # An existing account keeps its password; only its role changes.
                user.role = OPERATOR_ROLE
                audit.record(session, "operator_promoted", actor_user_id=user.id, target=email, ip="cli")
                return f"{email} exists and is now an operator (its password is unchanged)"
            user = User(email=email, password_hash=password_hash, role=OPERATOR_ROLE)
            session.add(user)
            await session.flush()
            audit.record(session, "operator_created", actor_user_id=user.id, target=email, ip="cli")
            return f"operator {email} created"
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
