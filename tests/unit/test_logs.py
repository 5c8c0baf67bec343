"""Log lines: JSON on stderr, with the credentials of any URL in them masked."""

from __future__ import annotations

import json

import pytest
import structlog

from collector import logs


def test_urls_in_log_lines_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    log = structlog.get_logger("test")

    log.warning(
        "sink_failed",
        error="POST https://u:pw-SECRET@r.example/e?token=tok-SECRET&x=1 failed, "
        "then nats://natstoken-SECRET@n:4222, no server answered",
        servers="nats://a:b-SECRET@n1:4222, nats://n2:4222",
        attempts=3,
    )

    out, err = capsys.readouterr()
    assert out == ""
    assert "SECRET" not in err
    line = json.loads(err)
    assert line["error"] == (
        "POST https://u:***@r.example/e?token=***&x=1 failed, then nats://***@n:4222, "
        "no server answered"
    )
    assert line["servers"] == "nats://a:***@n1:4222, nats://n2:4222"
    assert line["attempts"] == 3
