"""Benchmarks: commands that print figures and a ratio to a baseline measured in the same run."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    return None
