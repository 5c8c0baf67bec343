"""Log lines: JSON on stderr, with the credentials of any URL in them masked."""

from __future__ import annotations

import json
import logging

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


def test_the_libraries_warnings_are_json_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    # uvicorn warns of a malformed request (a port scanner, TLS spoken to plain HTTP), psycopg
    # and nats-py of their troubles: in a JSON log, as JSON lines, masked like ours.
    logs.configure("info", "json")
    logs.configure("info", "json")  # configuring again adds no second handler

    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("psycopg").warning("no answer from postgresql://u:pw-SECRET@db/x")
    logging.getLogger("nats").info("connected")  # libraries' info lines repeat ours

    out, err = capsys.readouterr()
    assert out == ""
    lines = [json.loads(line) for line in err.splitlines()]
    assert [(line["logger"], line["level"], line["event"]) for line in lines] == [
        ("uvicorn.error", "warning", "Invalid HTTP request received."),
        ("psycopg", "warning", "no answer from postgresql://u:***@db/x"),
    ]
    assert all("timestamp" in line for line in lines)


def test_the_libraries_warnings_follow_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("error", "json")
    try:
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
        assert capsys.readouterr().err == ""
    finally:
        logs.configure("info", "json")  # as the other tests found it
