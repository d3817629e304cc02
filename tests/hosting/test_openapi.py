"""The OpenAPI document matches the real router: every route documented, every documented path real."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from hosting.web.pages import PAGES

Client = TestClient[Any, Any]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


# The web app's pages and static files are not API (hosting.web).
WEB_APP = {page.path for page in PAGES} | {"/static"}


async def test_document_matches_the_router(client: Client) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"

    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    routed = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.method not in ("HEAD", "*") and route.resource.canonical not in WEB_APP
    }
    assert routed == documented

    # Every operation: a summary, an id, responses; protected ones declare bearer security and a 401.
    ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            assert operation["summary"], (method, path)
            assert operation["responses"], (method, path)
            if "security" in operation:
                assert "401" in operation["responses"], (method, path)
            for name in [p[1:-1] for p in path.split("/") if p.startswith("{")]:
                (parameter,) = [p for p in operation["parameters"] if p["name"] == name]
                assert parameter["in"] == "path" and parameter["required"], (method, path)
                assert parameter["schema"]["type"] == "string", (method, path)
    assert len(ids) == len(set(ids))
    # Every reference resolves.
    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in document["components"]["schemas"], ref


async def test_request_schemas_come_from_the_validators(client: Client) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    signup = document["paths"]["/api/auth/signup"]["post"]
    schema = signup["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["email", "password"]
    assert schema["properties"]["email"]["format"] == "email"
    assert schema["properties"]["password"]["minLength"] == 10
    assert schema["additionalProperties"] is False
    assert schema["properties"]["time_zone"]["type"] == "string"  # optional: not in "required" above
    assert "IANA" in schema["properties"]["time_zone"]["description"]
    assert "security" not in signup  # public
    users = document["paths"]["/api/operator/users"]["get"]
    limit = next(p for p in users["parameters"] if p["name"] == "limit")
    assert limit["in"] == "query"
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert "403" in users["responses"]
    restore = document["paths"]["/api/operator/instances/{instance_id}/restore"]["post"]
    assert "application/gzip" in restore["requestBody"]["content"]
