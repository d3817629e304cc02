"""Request schemas (voluptuous) and response schemas (JSON Schema, for the OpenAPI document)."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import voluptuous as vol

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a bound keeps hashing cost bounded


def email_address(value: Any) -> str:
    """An email address, trimmed and lowercased (accounts are matched case-insensitively)."""
    if not isinstance(value, str):
        raise vol.Invalid("expected an email address (a string)")
    address: str = value.strip().lower()
    if len(address) > 320:
        raise vol.Invalid("an email address is at most 320 characters")
    try:
        vol.Email()(address)  # raises on a malformed address
    except vol.Invalid:
        raise vol.Invalid("expected an email address like name@example.com") from None
    return address


def new_password(value: Any) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected a password (a string)")
    if len(value) < MIN_PASSWORD_LENGTH:
        raise vol.Invalid(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise vol.Invalid(f"the password may have at most {MAX_PASSWORD_LENGTH} characters")
    return value


# The IANA zones this machine knows (zoneinfo, as HA's own `config/core/update` checks them). "localtime"
# loads too (Debian links it to /etc/localtime) but names the host's zone, not one of IANA's. The OpenAPI
# document lists exactly this set, so the schema and the validation cannot disagree.
TIME_ZONES: tuple[str, ...] = tuple(sorted(available_timezones() - {"localtime"}))
_TIME_ZONE_SET = frozenset(TIME_ZONES)


def time_zone(value: Any) -> str:
    """An IANA time zone name (`Europe/Budapest`)."""
    if not isinstance(value, str) or value not in _TIME_ZONE_SET:
        raise vol.Invalid(f"unknown time zone {value!r:.80}; send an IANA name like Europe/Budapest")
    return value


def no_nul(value: str) -> str:
    """Text that is stored: PostgreSQL keeps no NUL character in text (SQLite would, but must not differ)."""
    if "\x00" in value:
        raise vol.Invalid("a NUL character (\\u0000) is not allowed here")
    return value


def stored_text(max_length: int) -> vol.All:
    """A non-empty string of at most `max_length` characters that the service stores."""
    return vol.All(str, no_nul, vol.Length(min=1, max=max_length))


class NumberBetween:
    """A JSON number (not a numeric string, not a boolean), finite, within [minimum, maximum]."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def __call__(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise vol.Invalid("expected a number")
        if not self.minimum <= value <= self.maximum:  # NaN fails this too (the JSON parser refuses it anyway)
            raise vol.Invalid(f"expected a number from {self.minimum} to {self.maximum}")
        return float(value)


def number_between(minimum: float, maximum: float) -> NumberBetween:
    return NumberBetween(minimum, maximum)


class IntegerBetween:
    """A JSON integer (not a boolean, not a string; 5.0 counts, as in JSON Schema) within [minimum, maximum]."""

    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def __call__(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise vol.Invalid("expected a whole number")
        if not self.minimum <= value <= self.maximum:
            raise vol.Invalid(f"expected a whole number from {self.minimum} to {self.maximum}")
        return value


# A password being checked (not set): any non-empty string of bounded length.
PASSWORD = vol.All(str, vol.Length(min=1, max=MAX_PASSWORD_LENGTH))
OPAQUE_TOKEN = vol.All(str, vol.Length(min=1, max=512))

SIGNUP = vol.Schema(
    {
        vol.Required("email", description="your email address; also your HA login"): email_address,
        vol.Required("password", description="at least 10 characters; also your HA password"): new_password,
        vol.Optional(
            "time_zone", description="your HA's IANA time zone, e.g. Europe/Budapest; default: the service's"
        ): time_zone,
        vol.Optional(
            "demo",
            description="true: your HA starts with a demo home (simulated devices in a few rooms, removable in "
            "one step); default: the service's setting (on in the embedded run command, off in production)",
        ): bool,  # a JSON true or false, not "yes" or 1
    }
)
LOGIN = vol.Schema({vol.Required("email"): email_address, vol.Required("password"): PASSWORD})
REFRESH = vol.Schema(
    {vol.Optional("refresh_token", description="none from a browser: its session cookie is used"): OPAQUE_TOKEN}
)
LOGOUT = vol.Schema(
    {vol.Required("refresh_token", description="the refresh token to revoke with its family"): OPAQUE_TOKEN}
)
CHANGE_PASSWORD = vol.Schema({vol.Required("current_password"): PASSWORD, vol.Required("new_password"): new_password})
DELETE_ACCOUNT = vol.Schema({vol.Required("password", description="your password again, to confirm"): PASSWORD})
UPGRADE = vol.Schema({vol.Optional("image", description="image to run; default: the configured one"): stored_text(255)})
MAX_OFFSET = 2**63 - 1
PAGE = vol.Schema(
    {
        vol.Optional("limit", default=100): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
        # Bounded: databases take a signed 64-bit OFFSET, and a larger number is no page anyway.
        vol.Optional("offset", default=0): vol.All(vol.Coerce(int), vol.Range(min=0, max=MAX_OFFSET)),
    }
)
USER_SEARCH = PAGE.extend(
    # Compared with stored text: PostgreSQL refuses a NUL in it, so it is refused here like in stored text.
    {
        vol.Optional("q", description="only accounts whose email contains this text"): vol.All(
            str, no_nul, vol.Length(max=320)
        )
    }
)

# JSON Schemas of the responses (OpenAPI components).
_TIME = {"type": "string", "format": "date-time"}
RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "request_id": {"type": "string"},
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "email", "role", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "email": {"type": "string", "format": "email"},
            "role": {"type": "string", "enum": ["user", "operator"]},
            "created_at": _TIME,
        },
    },
    "Tokens": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "refresh_expires_in"],
        "properties": {
            "access_token": {"type": "string", "description": "HS256 JWT; send as `Authorization: Bearer`"},
            "token_type": {"type": "string", "const": "Bearer"},
            "expires_in": {"type": "integer"},
            "refresh_token": {
                "type": "string",
                "description": "single use; /api/auth/refresh returns a new one. Absent for a browser session "
                "(`X-MicroPi-Session: cookie`): it is in the HttpOnly cookie",
            },
            "refresh_expires_in": {"type": "integer"},
        },
    },
    "Instance": {
        "type": "object",
        "required": ["id", "status", "status_reason", "url", "health"],
        "properties": {
            "id": {"type": "string"},
            "user_id": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["provisioning", "ready", "error", "stopped", "deleting"]},
            "status_reason": {"type": "string"},
            "url": {"type": "string"},
            "port": {"type": "integer"},
            "image": {"type": "string"},
            "health": {"type": "string"},
            "restart_count": {"type": "integer"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "assistant": {
                "type": "object",
                "description": "GET /api/me/instance only: the voice assistant's state, read from the HA",
                "properties": {
                    "state": {
                        "type": "string",
                        "enum": ["ready", "model_server_unreachable", "model_missing", "not_set_up", "unknown"],
                    },
                    "message": {"type": "string"},
                },
            },
            "provisioning_failure": {
                "type": ["object", "null"],
                "description": "operators only: the last provisioning failure (detail, retryable, attempts, "
                "next_retry_at)",
            },
        },
    },
    "SignupResult": {
        "type": "object",
        "required": ["user", "tokens", "instance"],
        "properties": {
            "user": {"$ref": "#/components/schemas/User"},
            "tokens": {"$ref": "#/components/schemas/Tokens"},
            "instance": {"oneOf": [{"$ref": "#/components/schemas/Instance"}, {"type": "null"}]},
        },
    },
    "UserList": {
        "type": "object",
        "required": ["users", "total"],
        "properties": {
            "users": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
            "total": {"type": "integer"},
        },
    },
    "InstanceList": {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}}},
    },
    "OrphanList": {
        "type": "object",
        "required": ["orphans"],
        "properties": {
            "orphans": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "labels", "state"],
                    "properties": {
                        "name": {"type": "string", "description": "the container's or process's name"},
                        "labels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "ownership labels (io.micropi.instance, io.micropi.user)",
                        },
                        "state": {"type": "string", "enum": ["running", "stopped", "missing"]},
                    },
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "version", "database", "runtime", "uptime_seconds"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "version": {"type": "string"},
            "database": {"type": "object", "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}}},
            "runtime": {"type": "object", "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}}},
            "uptime_seconds": {"type": "number"},
        },
    },
}
