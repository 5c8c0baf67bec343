"""Finds the shipped `sql/` folder and loads named queries: the runtime ones of
`sql/queries.sql`, and those of other files such as `sql/bench_api.sql`."""

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


def queries() -> dict[str, LiteralString]:
    return named_queries("queries.sql")


@cache
def named_queries(file_name: str) -> dict[str, LiteralString]:
    """The `-- name: <name>` blocks of a file of `sql/`, by name, in the file's order."""
    text = (sql_dir() / file_name).read_text(encoding="utf-8")
    blocks = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    # Our own shipped file, never user input: safe to treat as literal SQL.
    return {
        name: cast(LiteralString, body.strip())
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True)
    }
