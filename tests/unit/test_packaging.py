"""What pip may install for an operator: no version that pyproject.toml admits lacks what
collector uses. The bounds were found by installing every dependency at its lower bound and
running the tests; each entry says what an older version lacks, and what goes wrong with it."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

NEEDED = {
    "anyio": ("4.6", "collector run ignored shutdown_timeout_s while a required sink retried"),
    "msgspec": ("0.18.6", "json.encode(order='sorted'): plain JSON with a huge integer got a 500"),
    "nats-py": ("2.15", "close() after a failed connect: collector died while NATS was down"),
    "pydantic-settings": (
        "2.13",
        "a list variable that is not JSON was reported as 'Input should be a valid list', "
        "not by its variable with an example",
    ),
}


def lower_bounds() -> dict[str, Version]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    bounds = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        lows = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert lows, f"{line}: give a lower bound"
        bounds[requirement.name] = max(lows)
    return bounds


def test_no_admitted_version_lacks_what_collector_uses() -> None:
    bounds = lower_bounds()
    for name, (version, lacking) in NEEDED.items():
        assert bounds[name] >= Version(version), f"{name}>={bounds[name]}: {lacking}"
