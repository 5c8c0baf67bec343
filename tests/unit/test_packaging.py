"""What pip may install for an operator: no version that pyproject.toml admits lacks what
collector uses. The bounds were found by installing every dependency at its lower bound and
running the tests; each entry says what an older version lacks, and what goes wrong with it."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
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


def test_the_wheel_ships_the_sql_and_the_sdist_the_repository(tmp_path: Path) -> None:
    # The wheel is what an operator installs: migrations and named queries inside it. The sdist
    # is what packagers build and test from: every tracked file, the compose stack, Dockerfile
    # and dashboards (which its tests read) included.
    pytest.importorskip("hatchling")
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to compare the sdist with")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-d", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=120,
    )
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("collector/sql/")}
    sql = {f"collector/{path.relative_to(REPO)}" for path in (REPO / "sql").rglob("*.sql")}
    assert shipped == sql

    [sdist] = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        packed = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(tracked) <= packed
