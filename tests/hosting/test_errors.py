"""One error shape for every failure, honest status codes, request ids, and CORS."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient

from hosting.settings import Settings
from tests.hosting.conftest import start_client
from tests.hosting.helpers import PASSWORD, assert_error, bearer, make_operator, sign_up

Client = TestClient[Any, Any]


async def test_aiohttp_404_and_405_have_the_error_shape(client: Client) -> None:
    missing = await client.get("/api/nothing-here")
    assert missing.status == 404
    assert_error(await missing.json(), "not_found")
    wrong_method = await client.put("/api/me")
    assert wrong_method.status == 405
    assert_error(await wrong_method.json(), "method_not_allowed")
    assert "GET" in wrong_method.headers["Allow"]


async def test_malformed_bodies(client: Client) -> None:
    not_json = await client.post("/api/auth/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert not_json.status == 400
    assert_error(await not_json.json(), "bad_request")
    form = await client.post("/api/auth/login", data={"email": "a@example.com", "password": PASSWORD})
    assert form.status == 400
    assert "application/json" in (await form.json())["error"]["message"]
    array = await client.post("/api/auth/login", json=["a@example.com", PASSWORD])
    assert array.status == 400
    # No body at all is an empty object: every missing field is named.
    empty = await client.post("/api/auth/login")
    assert empty.status == 422
    assert "'email'" in (await empty.json())["error"]["message"]


async def test_validation_errors_name_every_bad_field(client: Client) -> None:
    response = await client.post("/api/auth/signup", json={"email": "nope", "password": "short", "extra": 1})
    body = await response.json()
    assert response.status == 422
    assert_error(body, "validation_error")
    message = body["error"]["message"]
    assert "'email'" in message
    assert "'password'" in message
    assert "'extra'" in message


async def test_query_validation(client: Client) -> None:
    operator = await make_operator(client, "q@example.com")
    headers = bearer(operator["access_token"])
    for query in ("limit=abc", "limit=0", "offset=-1", "limit=5000"):
        response = await client.get(f"/api/operator/users?{query}", headers=headers)
        assert response.status == 422, query
        assert_error(await response.json(), "validation_error")
    await sign_up(client, "second@example.com")
    page = await (await client.get("/api/operator/users?limit=1&offset=1", headers=headers)).json()
    assert page["total"] == 2
    assert [u["email"] for u in page["users"]] == ["second@example.com"]


async def test_request_id_is_echoed_or_made(client: Client) -> None:
    mine = await client.get("/api/nothing", headers={"X-Request-ID": "trace-123"})
    assert mine.headers["X-Request-ID"] == "trace-123"
    assert (await mine.json())["request_id"] == "trace-123"
    unsafe = await client.get("/api/nothing", headers={"X-Request-ID": "bad id\twith spaces"})
    made = unsafe.headers["X-Request-ID"]
    assert made != "bad id\twith spaces"
    assert (await unsafe.json())["request_id"] == made
    ok = await client.get("/health")
    assert len(ok.headers["X-Request-ID"]) == 32


async def test_cors_allow_list(settings: Settings) -> None:
    client = await start_client(dataclasses.replace(settings, cors_origins=("https://app.example.com",)))
    try:
        preflight = await client.options(
            "/api/me",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

        denied = await client.options(
            "/api/me", headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}
        )
        assert denied.status == 403
        assert_error(await denied.json(), "cors_origin_denied")
        assert "Access-Control-Allow-Origin" not in denied.headers

        allowed = await client.get("/health", headers={"Origin": "https://app.example.com"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "Origin" in allowed.headers.getall("Vary")
        # Error responses carry CORS headers too, or a browser app could not read why it failed.
        error = await client.get("/api/me", headers={"Origin": "https://app.example.com"})
        assert error.status == 401
        assert error.headers["Access-Control-Allow-Origin"] == "https://app.example.com"

        other = await client.get("/health", headers={"Origin": "https://evil.example.com"})
        assert "Access-Control-Allow-Origin" not in other.headers
    finally:
        await client.close()


async def test_no_cors_by_default(client: Client) -> None:
    preflight = await client.options(
        "/api/me", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status == 403
