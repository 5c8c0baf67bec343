"""Finds the shipped `sql/` folder and loads the named runtime queries of `sql/queries.sql`."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import LiteralString, cast

_PACKAGE = Path(__file__).resolve().parent.parent


def sql_dir() -> Path:
    """`collector/sql` inside a wheel; the repository's `sql/` in an editable install."""
    for candidate in (_PACKAGE / "sql", _PACKAGE.parent / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError(f"collector's sql/ folder is missing next to {_PACKAGE}")


@cache
def queries() -> dict[str, LiteralString]:
    text = (sql_dir() / "queries.sql").read_text()
    blocks = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    # Our own shipped file, never user input: safe to treat as literal SQL.
    return {
        name: cast(LiteralString, body.strip())
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True)
    }
