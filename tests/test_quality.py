"""Lint, format, types and import contracts are part of the test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
        [str(BIN / "lint-imports")],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict", "import-contracts"],
)
def test_quality_gate(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```(?:sh|bash)\n(.*?)```", readme.split("## Quick start")[1], re.S)
    quick_start = [c.strip() for c in commands[0].strip().splitlines() if c.strip()]
    assert len(quick_start) == 2, "the quick start has exactly two commands"
    assert quick_start[1] in (REPO / ".ci" / "run").read_text()


def test_every_table_in_the_docs_has_a_header() -> None:
    # A blank line inside a Markdown table ends it: the rows after it show as plain text.
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        for table in re.findall(r"(?:^\|.*\n)+", text, re.M):
            delimiter = table.splitlines()[1] if table.count("\n") > 1 else ""
            assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", delimiter), (
                f"{path.name}: a table without a header row: {table.splitlines()[0]}"
            )
