"""Fixtures of the unit tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SPEC

SCHEMAS = SPEC / "v0.4.1" / "schemas"


@pytest.fixture(scope="session")
def validators() -> dict[str, Any]:
    """A validator per CDEvents type, from the spec's schemas (links/* resolved locally)."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"CDEvents spec not found at {SCHEMAS} (the repository's sibling shared/)")
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    documents = [json.loads(p.read_text()) for p in sorted(SCHEMAS.rglob("*.json"))]
    # Every schema and link schema is registered under its $id; relative $refs such as
    # "links/embeddedlinksarray" resolve against the referring schema's $id.
    registry = referencing.Registry().with_resources(
        (doc["$id"], referencing.Resource.from_contents(doc)) for doc in documents
    )
    validators: dict[str, Any] = {}
    for doc in documents:
        context = doc.get("properties", {}).get("context", {}).get("properties", {})
        for event_type in context.get("type", {}).get("enum", []):
            validators[event_type] = jsonschema.Draft202012Validator(
                doc,
                registry=registry,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )
    return validators
