"""The OpenAPI 3.1 document of the running HTTP server, built from the configured sources.

Each http source contributes its POST path, its body formats and its auth as a security
scheme; the operations endpoints (/healthz, /readyz, /metrics, /openapi.json) are fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from collector import __version__
from collector.settings import (
    HmacAuthSettings,
    HttpSettings,
    HttpSourceSettings,
    JwtAuthSettings,
    NoAuthSettings,
    TokenAuthSettings,
)

OPERATIONS_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json")

_PROBLEM = "application/problem+json"


class DescribedSource(Protocol):
    """What the document needs of an http source (collector.sources.http.HttpSource has it)."""

    name: str
    path: str
    settings: HttpSourceSettings


def build_openapi(sources: Sequence[DescribedSource], http: HttpSettings) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemes: dict[str, Any] = {}
    for source in sources:
        security, source_schemes = _security(source.name, source.settings)
        schemes.update(source_schemes)
        paths[source.path] = {"post": _ingest_operation(source, http, security)}
    for path, item in _operations_paths().items():  # a source may POST on /metrics too
        paths.setdefault(path, {}).update(item)
    components: dict[str, Any] = {"schemas": _SCHEMAS, "responses": _responses()}
    if schemes:
        components["securitySchemes"] = schemes
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "collector",
            "version": __version__,
            "summary": "Events in over HTTP, committed to PostgreSQL before the answer.",
            "description": (
                "A 202 answer (200 from a line-protocol source, as ClusterCockpit's senders "
                "expect) means the events are committed (ack = commit), or queued "
                "(ack = enqueue). Errors are RFC 9457 problem details that name the event "
                "index or line and field. Resending is always safe: replays are recognised "
                "by (source, type, id) and counted as duplicates."
            ),
        },
        "tags": [
            {"name": "ingest", "description": "HTTP sources: one path per configured source"},
            {"name": "operations", "description": "Health, readiness, metrics, this document"},
        ],
        "paths": paths,
        "components": components,
    }


def _ingest_operation(
    source: DescribedSource, http: HttpSettings, security: list[dict[str, list[str]]]
) -> dict[str, Any]:
    settings = source.settings
    lines = settings.format == "lineprotocol"
    committed = settings.ack == "commit"
    parameters: list[dict[str, Any]] = [
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": False,
            "description": "gzip bodies are decompressed (up to 10 × the body size limit)",
            "schema": {"type": "string", "enum": ["gzip", "x-gzip", "identity"]},
        }
    ]
    if lines:
        parameters += [
            {
                "name": "cluster",
                "in": "query",
                "required": False,
                "description": "cluster of lines that carry no `cluster` tag"
                + (f" (default: {settings.cluster})" if settings.cluster else ""),
                "schema": {"type": "string"},
            },
            {
                "name": "precision",
                "in": "query",
                "required": False,
                "description": "timestamp precision; auto-detected when absent",
                "schema": {"type": "string", "enum": ["s", "ms", "us", "ns"]},
            },
        ]
        body: dict[str, Any] = {
            "required": True,
            "description": (
                "InfluxDB line protocol (ClusterCockpit CCMessages), any content type: a line "
                "whose field `event` is a string is an event, `log` a log message; metric "
                "lines (`value`) are counted and skipped. A bad line is reported by number "
                "and does not lose the good ones."
            ),
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    else:
        parameters += _binary_mode_headers()
        body = {
            "required": True,
            "description": (
                "CloudEvents over HTTP in structured, batch or binary mode (binary: the "
                "ce-* headers carry the attributes and the body is the event's data in its "
                "own content type), a CDEvent, a JSON array of events, NDJSON (one event "
                "per line), or a form whose field payload holds any of the JSON ones."
                + (
                    f" Plain JSON objects get type {settings.event_type!r}."
                    if settings.event_type
                    else ""
                )
            ),
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Event"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                        ]
                    }
                },
                "application/cloudevents+json": {
                    "schema": {"$ref": "#/components/schemas/CloudEvent"}
                },
                "application/cloudevents-batch+json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/CloudEvent"},
                    }
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "one JSON event per line"}
                },
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "payload": {
                                "type": "string",
                                "description": "the JSON, read as if sent as application/json "
                                "(GitHub's form webhooks)",
                            }
                        },
                        "required": ["payload"],
                    }
                },
            },
        }
    accepted = "#/components/schemas/" + ("Committed" if committed else "Queued")
    responses: dict[str, Any] = {
        # ClusterCockpit's HTTP sinks (cc-lib, cc-metric-collector) take nothing but a 200.
        "200" if lines else "202": {
            "description": (
                "committed by every required sink" if committed else "queued (not yet committed)"
            ),
            "content": {"application/json": {"schema": {"$ref": accepted}}},
        },
        "400": {"$ref": "#/components/responses/BadRequest"},
    }
    if not isinstance(settings.auth, NoAuthSettings):
        responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
        responses["403"] = {"$ref": "#/components/responses/Forbidden"}
    responses["405"] = {"$ref": "#/components/responses/MethodNotAllowed"}
    responses["408"] = {"$ref": "#/components/responses/RequestTimeout"}
    responses["413"] = {"$ref": "#/components/responses/PayloadTooLarge"}
    responses["415"] = {"$ref": "#/components/responses/UnsupportedMediaType"}
    responses["503"] = {"$ref": "#/components/responses/ServiceUnavailable"}
    operation: dict[str, Any] = {
        "tags": ["ingest"],
        "operationId": f"ingest_{source.name}",
        "summary": f"Send events to source {source.name!r}"
        + (" (ClusterCockpit line protocol)" if lines else ""),
        "description": (
            f"At most {settings.max_events} events per request and {http.max_body_bytes} bytes "
            f"per body; a full queue is waited on for {settings.queue_wait_s:g} s, then 503. "
            + (
                "The answer comes once the events are committed."
                if committed
                else "The answer comes once the events are queued: fast, but lost if "
                "collector stops before the commit."
            )
            + " A request with `Prefer: reply` (Knative) or `Prefer: return=minimal` is "
            "answered without a body."
        ),
        "parameters": parameters,
        "requestBody": body,
        "responses": responses,
    }
    if security:
        operation["security"] = security
    return operation


def _binary_mode_headers() -> list[dict[str, Any]]:
    described = {
        "ce-specversion": "binary mode: CloudEvents spec version (1.0); the body is the data",
        "ce-id": "binary mode: event id",
        "ce-source": "binary mode: event source",
        "ce-type": "binary mode: event type",
        "ce-subject": "binary mode: event subject",
        "ce-time": "binary mode: event time (RFC 3339)",
    }
    parameters: list[dict[str, Any]] = []
    for name, description in described.items():
        schema: dict[str, Any] = {"type": "string"}
        if name == "ce-specversion":
            schema["enum"] = ["1.0"]
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": schema,
            }
        )
    return parameters


def _security(
    name: str, settings: HttpSourceSettings
) -> tuple[list[dict[str, list[str]]], dict[str, Any]]:
    """The operation's security requirement (alternatives) and the schemes it names."""
    auth = settings.auth
    if isinstance(auth, NoAuthSettings):
        return [], {}
    if isinstance(auth, TokenAuthSettings):
        scheme_name = f"{name}_token"
        if auth.header.lower() == "authorization":
            scheme: dict[str, Any] = {
                "type": "http",
                "scheme": "bearer",
                "description": f"static token of source {name!r}",
            }
        else:
            scheme = {
                "type": "apiKey",
                "in": "header",
                "name": auth.header,
                "description": f"static token of source {name!r}, as the header's value",
            }
        return [{scheme_name: []}], {scheme_name: scheme}
    if isinstance(auth, HmacAuthSettings):
        scheme_name = f"{name}_hmac"
        scheme = {
            "type": "apiKey",
            "in": "header",
            "name": auth.header,
            "description": (
                f"HMAC-SHA256 of the raw body with a secret of source {name!r}: "
                f"{auth.prefix!r} followed by the {auth.encoding} digest"
            ),
        }
        return [{scheme_name: []}], {scheme_name: scheme}
    if isinstance(auth, JwtAuthSettings):
        bearer, header = f"{name}_jwt", f"{name}_jwt_x_auth_token"
        schemes = {
            bearer: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "Ed25519-signed JWT (EdDSA); exp, nbf and iat enforced when present",
            },
            header: {
                "type": "apiKey",
                "in": "header",
                "name": "X-Auth-Token",
                "description": "the same JWT in X-Auth-Token, as ClusterCockpit sends it",
            },
        }
        return [{bearer: []}, {header: []}], schemes
    raise AssertionError(auth)


def _operations_paths() -> dict[str, Any]:
    def get(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {
                "tags": ["operations"],
                "operationId": operation_id,
                "summary": summary,
                "responses": responses,
            }
        }

    readiness = {"$ref": "#/components/schemas/Readiness"}
    paths = {
        "/healthz": get(
            "healthz",
            "Liveness: the process answers",
            {
                "200": {
                    "description": "alive",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                    },
                }
            },
        ),
        "/readyz": get(
            "readyz",
            "Readiness: the database answers and the queue has room",
            {
                "200": {
                    "description": "ready",
                    "content": {"application/json": {"schema": readiness}},
                },
                "503": {
                    "description": "not ready; `problems` says why",
                    "content": {"application/json": {"schema": readiness}},
                },
            },
        ),
        "/metrics": get(
            "metrics",
            "Prometheus metrics (text exposition; OpenMetrics when the Accept header asks)",
            {
                "200": {
                    "description": "metrics named collector_*",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    },
                }
            },
        ),
        "/openapi.json": get(
            "openapi",
            "This document",
            {
                "200": {
                    "description": "OpenAPI 3.1 document of this server",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        ),
    }
    assert tuple(paths) == OPERATIONS_PATHS
    return paths


def _problem_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {_PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _responses() -> dict[str, Any]:
    return {
        "BadRequest": _problem_response(
            "invalid input: malformed JSON, gzip or line protocol, or invalid events (valid "
            "ones in the same request are still stored; `errors` names each rejected one)"
        ),
        "Unauthorized": _problem_response(
            "missing credentials",
            {
                "WWW-Authenticate": {
                    "description": "Bearer challenge",
                    "schema": {"type": "string"},
                }
            },
        ),
        "Forbidden": _problem_response("wrong credentials or signature"),
        "MethodNotAllowed": _problem_response(
            "the path takes another method",
            {"Allow": {"description": "the methods the path takes", "schema": {"type": "string"}}},
        ),
        "RequestTimeout": _problem_response(
            "the body did not arrive within http.request_timeout_s; the connection is closed"
        ),
        "PayloadTooLarge": _problem_response(
            "body larger than http.max_body_bytes (also once decompressed), or more events "
            "than the source's max_events"
        ),
        "UnsupportedMediaType": _problem_response("unsupported Content-Type or Content-Encoding"),
        "ServiceUnavailable": _problem_response(
            "queue full, database down, not committed in time, or shutting down: resend later "
            "(resending is safe)",
            {
                "Retry-After": {
                    "description": "seconds to wait before resending",
                    "schema": {"type": "integer"},
                }
            },
        ),
    }


_STRING = {"type": "string", "minLength": 1}

_SCHEMAS: dict[str, Any] = {
    "CloudEvent": {
        "type": "object",
        "description": "A CloudEvent 1.0 in structured mode; extension attributes are kept",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": _STRING,
            "source": _STRING,
            "type": _STRING,
            "subject": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string"},
            "dataschema": {"type": "string"},
            "data": {},
            "data_base64": {"type": "string", "contentEncoding": "base64"},
        },
        "additionalProperties": True,
    },
    "CDEvent": {
        "type": "object",
        "description": "A CDEvent (https://cdevents.dev): context and subject",
        "required": ["context", "subject"],
        "properties": {
            "context": {
                "type": "object",
                "required": ["id", "source", "type", "timestamp"],
                "properties": {
                    "id": _STRING,
                    "source": _STRING,
                    "type": {**_STRING, "pattern": "^dev\\.cdevents\\."},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "specversion": {"type": "string"},
                },
            },
            "subject": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": _STRING},
            },
        },
    },
    "Event": {
        "description": (
            "A CloudEvent (structured), a CDEvent, or a plain JSON object when the source "
            "has event_type configured"
        ),
        "anyOf": [
            {"$ref": "#/components/schemas/CloudEvent"},
            {"$ref": "#/components/schemas/CDEvent"},
            {"type": "object"},
        ],
    },
    "Committed": {
        "type": "object",
        "description": "The events are committed in every required sink",
        "required": ["accepted", "duplicates", "ids"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0, "description": "events received"},
            "duplicates": {
                "type": "integer",
                "minimum": 0,
                "description": "of which were already stored before",
            },
            "ids": {"type": "array", "items": {"type": "string"}},
            "metrics_skipped": {
                "type": "integer",
                "minimum": 0,
                "description": "line protocol: metric lines skipped",
            },
        },
    },
    "Queued": {
        "type": "object",
        "description": "The events are queued, not yet committed (ack = enqueue)",
        "required": ["accepted", "queued", "ids"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "queued": {"const": True},
            "ids": {"type": "array", "items": {"type": "string"}},
            "metrics_skipped": {"type": "integer", "minimum": 0},
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details, with the rejected events in `errors`",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference", "default": "about:blank"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "format": "uri-reference"},
            "errors": {
                "type": "array",
                "description": "400 for invalid events: one entry per rejected event",
                "items": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": {
                        "location": {
                            "type": ["string", "null"],
                            "description": "the event: 'event 3', 'line 7', or null",
                        },
                        "detail": {"type": "string", "description": "what is wrong, by field"},
                    },
                },
            },
            "accepted": {
                "type": "integer",
                "description": "400 for invalid events: valid events of the request stored",
            },
            "duplicates": {"type": "integer"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "metrics_skipped": {"type": "integer"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "alive"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "problems", "queue_depth"],
        "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "problems": {"type": "array", "items": {"type": "string"}},
            "queue_depth": {"type": "integer", "minimum": 0},
        },
    },
}
