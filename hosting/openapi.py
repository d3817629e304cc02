"""The OpenAPI 3.1 document, written from the route table and its voluptuous schemas (one source of truth)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

import voluptuous as vol

from hosting.api.endpoint import Endpoint
from hosting.api.schemas import (
    RESPONSE_SCHEMAS,
    TIME_ZONES,
    NumberBetween,
    email_address,
    new_password,
    no_nul,
    time_zone,
)

# `{name}` or aiohttp's `{name:regex}` (the regex may hold `{m,n}` counts).
_PATH_PARAM = re.compile(r"{(\w+)(?::((?:[^{}]|{[^{}]*})*))?}")


def document_path(path: str) -> str:
    """The route's path as OpenAPI (and aiohttp's `canonical`) write it: `{name}`, without the regex."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def build_document(endpoints: Iterable[Endpoint], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(document_path(endpoint.path), {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MicroPi hosting",
            "version": version,
            "description": "Accounts, and one Home Assistant per user. Every error is "
            '`{"error": {"code", "message"}, "request_id"}`.',
        },
        "paths": paths,
        "components": {
            "schemas": RESPONSE_SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.handler.__name__,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "responses": {},
    }
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", **({"pattern": f"^{regex}$"} if regex else {})},
        }
        for name, regex in _PATH_PARAM.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        schema = voluptuous_to_json_schema(endpoint.query)
        for name, prop in schema["properties"].items():
            parameters.append({"name": name, "in": "query", "required": name in schema["required"], "schema": prop})
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        body_schema = voluptuous_to_json_schema(endpoint.body)
        operation["requestBody"] = {
            # No body at all reads as `{}`: the body is only required when one of its fields is.
            "required": bool(body_schema["required"]),
            "content": {"application/json": {"schema": body_schema}},
        }
    elif endpoint.raw_body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {endpoint.raw_body: {"schema": {"type": "string", "contentEncoding": "binary"}}},
        }
    responses: dict[str, Any] = operation["responses"]
    for status, reply in sorted(endpoint.responses.items()):
        entry: dict[str, Any] = {"description": reply.description}
        if reply.schema is not None:
            entry["content"] = {reply.content_type: {"schema": {"$ref": f"#/components/schemas/{reply.schema}"}}}
        elif reply.content_type != "application/json":
            entry["content"] = {reply.content_type: {"schema": {"type": "string", "contentEncoding": "binary"}}}
        responses[str(status)] = entry
    # The failures every endpoint of a kind can give, in the one error shape.
    if endpoint.body is not None:
        responses.setdefault("400", {"description": "the body is not a JSON object", "content": _ERROR})
        responses.setdefault("422", {"description": "a field is missing or invalid", "content": _ERROR})
    if endpoint.query is not None:
        responses.setdefault("422", {"description": "a query parameter is invalid", "content": _ERROR})
    if endpoint.auth != "public":
        operation["security"] = [{"bearer": []}]
        responses.setdefault("401", {"description": "no, an expired or an invalid access token", "content": _ERROR})
    if endpoint.auth == "operator":
        responses.setdefault("403", {"description": "the caller is not an operator", "content": _ERROR})
    responses.setdefault("503", {"description": "the database (or the runtime) is unavailable", "content": _ERROR})
    return operation


def voluptuous_to_json_schema(schema: Any) -> dict[str, Any]:
    """JSON Schema for the voluptuous constructs our request schemas use."""
    if isinstance(schema, vol.Schema):
        return voluptuous_to_json_schema(schema.schema)
    if isinstance(schema, dict):
        properties: dict[str, Any] = {}
        required: list[str] = []
        for key, value in schema.items():
            name = str(key.schema) if isinstance(key, vol.Marker) else str(key)
            prop = voluptuous_to_json_schema(value)
            if isinstance(key, vol.Marker) and key.description:
                prop["description"] = key.description
            if isinstance(key, vol.Optional) and not isinstance(key.default, vol.Undefined):
                prop["default"] = key.default()
            if isinstance(key, vol.Required):
                required.append(name)
            properties[name] = prop
        return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return _value_schema(schema)


def _value_schema(validator: Any) -> dict[str, Any]:
    if validator is email_address:
        return {"type": "string", "format": "email", "maxLength": 320}
    if validator is new_password:
        return {"type": "string", "minLength": 10, "maxLength": 1024}
    if validator is time_zone:
        return {"type": "string", "enum": list(TIME_ZONES), "examples": ["Europe/Budapest"]}
    if isinstance(validator, NumberBetween):
        return {"type": "number", "minimum": validator.minimum, "maximum": validator.maximum}
    if validator is no_nul:
        return {"pattern": "^[^\\u0000]*$"}
    if validator in _TYPES:
        return {"type": _TYPES[validator]}
    if isinstance(validator, vol.All):
        merged: dict[str, Any] = {}
        for part in validator.validators:
            merged.update(_value_schema(part))
        return merged
    if isinstance(validator, vol.Coerce):
        return {"type": _TYPES.get(validator.type, "string")}
    if isinstance(validator, vol.Length):
        return {k: v for k, v in (("minLength", validator.min), ("maxLength", validator.max)) if v is not None}
    if isinstance(validator, vol.Range):
        return {k: v for k, v in (("minimum", validator.min), ("maximum", validator.max)) if v is not None}
    if isinstance(validator, vol.In):
        return {"enum": list(cast(Iterable[Any], validator.container))}
    if isinstance(validator, vol.Match):
        return {"pattern": validator.pattern.pattern}
    raise TypeError(f"no JSON Schema for validator {validator!r}; teach hosting.openapi about it")


_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
