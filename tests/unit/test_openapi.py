"""The OpenAPI document: valid 3.1, built from the configured sources, covering every route."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate

from collector.app import build_sources, build_web
from collector.metrics import Metrics
from collector.pipeline import Pipeline, PipelineLimits
from collector.ports import HttpRequest
from collector.settings import Settings
from collector.sinks.memory import MemorySink
from collector.web import WebApp

pytestmark = pytest.mark.anyio

JWT_KEY = base64.b64encode(bytes(range(32))).decode()

SOURCES: dict[str, Any] = {
    "hooks": {"type": "http"},
    "bearer": {"type": "http", "auth": {"type": "token", "token": "t0ken"}},
    "keyed": {
        "type": "http",
        "path": "/in/keyed",
        "auth": {"type": "token", "token": "t0ken", "header": "x-api-key"},
    },
    "github": {"type": "http", "auth": {"type": "hmac", "secrets": ["one", "two"]}},
    "cc": {
        "type": "http",
        "format": "lineprotocol",
        "ack": "enqueue",
        "cluster": "fritz",
        "auth": {"type": "jwt", "public_keys": [JWT_KEY]},
    },
}


def web(sources: dict[str, Any], **http: Any) -> WebApp:
    settings = Settings(sources=sources, sinks={"db": {"type": "postgres"}}, http=http)
    metrics = Metrics()
    pipeline = Pipeline([MemorySink()], [], PipelineLimits(), metrics)
    app = build_web(settings, build_sources(settings, metrics), pipeline, [])
    assert app is not None
    return app


async def served_document(app: WebApp) -> dict[str, Any]:
    async def no_body(limit: int) -> bytes:
        return b""

    handler = app.routes["/openapi.json"]["GET"]
    response = await handler(HttpRequest("GET", "/openapi.json", {}, {}, no_body))
    assert response.status == 200
    assert ("content-type", "application/json") in response.headers
    document: dict[str, Any] = orjson.loads(response.body)
    return document


async def test_the_document_is_valid_openapi_3_1_and_lists_every_route() -> None:
    app = web(SOURCES)
    doc = await served_document(app)

    validate(doc)
    assert doc["openapi"] == "3.1.0"
    served = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == documented
    assert {"/webhook/hooks", "/webhook/bearer", "/in/keyed", "/webhook/github", "/api/write"} <= {
        p for p, _ in served
    }


async def test_security_schemes_follow_each_sources_auth() -> None:
    doc = await served_document(web(SOURCES))
    schemes = doc["components"]["securitySchemes"]
    paths = doc["paths"]

    assert "security" not in paths["/webhook/hooks"]["post"]
    assert paths["/webhook/bearer"]["post"]["security"] == [{"bearer_token": []}]
    assert schemes["bearer_token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "static token of source 'bearer'",
    }
    assert paths["/in/keyed"]["post"]["security"] == [{"keyed_token": []}]
    assert schemes["keyed_token"]["type"] == "apiKey"
    assert (schemes["keyed_token"]["in"], schemes["keyed_token"]["name"]) == (
        "header",
        "x-api-key",
    )
    assert schemes["github_hmac"]["name"] == "x-hub-signature-256"
    assert "sha256=" in schemes["github_hmac"]["description"]
    # ClusterCockpit sends the JWT as a bearer token or in X-Auth-Token: either will do.
    assert paths["/api/write"]["post"]["security"] == [
        {"cc_jwt": []},
        {"cc_jwt_x_auth_token": []},
    ]
    assert schemes["cc_jwt"]["bearerFormat"] == "JWT"
    assert schemes["cc_jwt_x_auth_token"]["name"] == "X-Auth-Token"
    # Credentials can only fail where there are some.
    assert "401" not in paths["/webhook/hooks"]["post"]["responses"]
    assert {"401", "403"} <= set(paths["/webhook/github"]["post"]["responses"])


async def test_bodies_parameters_and_answers_of_ingest_operations() -> None:
    doc = await served_document(web(SOURCES))
    events = doc["paths"]["/webhook/hooks"]["post"]
    lines = doc["paths"]["/api/write"]["post"]

    assert set(events["requestBody"]["content"]) == {
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "application/x-ndjson",
        "application/x-www-form-urlencoded",
    }
    headers = {p["name"] for p in events["parameters"] if p["in"] == "header"}
    assert {"ce-specversion", "ce-id", "ce-source", "ce-type", "Content-Encoding"} <= headers
    assert set(lines["requestBody"]["content"]) == {"text/plain"}
    query = {p["name"]: p for p in lines["parameters"] if p["in"] == "query"}
    assert set(query) == {"cluster", "precision"}
    assert query["precision"]["schema"]["enum"] == ["s", "ms", "us", "ns"]

    assert set(events["responses"]) == {"202", "400", "405", "408", "413", "415", "503"}
    ack = events["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    committed = doc["components"]["schemas"]["Committed"]
    assert ack == "#/components/schemas/Committed"
    assert set(committed["required"]) == {"accepted", "duplicates", "ids"}
    # ClusterCockpit's HTTP sinks count anything but a 200 as a failure.
    assert {"200", "400", "401", "403"} <= set(lines["responses"])
    assert "202" not in lines["responses"]
    queued = lines["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert queued == "#/components/schemas/Queued"  # cc has ack = "enqueue"

    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])
    unavailable = doc["components"]["responses"]["ServiceUnavailable"]
    assert "application/problem+json" in unavailable["content"]
    assert "Retry-After" in unavailable["headers"]


async def test_without_http_sources_the_operations_endpoints_are_documented() -> None:
    app = web({}, enabled=True)
    doc = await served_document(app)

    validate(doc)
    assert set(doc["paths"]) == {"/healthz", "/readyz", "/metrics", "/openapi.json"}
    assert set(doc["paths"]) == set(app.routes)
    assert "securitySchemes" not in doc["components"]


async def test_a_source_on_an_operations_path_keeps_both_operations() -> None:
    app = web({"odd": {"type": "http", "path": "/metrics"}})
    doc = await served_document(app)

    validate(doc)
    assert set(doc["paths"]["/metrics"]) == {"get", "post"}
