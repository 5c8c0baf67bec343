"""`collector send`, its pure parts: format detection, the request it builds, its messages."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from collector.auth import AuthError, HmacAuth
from collector.send import (
    Answer,
    Hmac,
    Prepared,
    SendFailed,
    SendOptions,
    credential,
    describe_failure,
    detect_format,
    parse_header,
    post,
    prepare,
    read_data,
)

CDEVENT = b'{"context": {"specversion": "0.4.1", "id": "1"}, "subject": {"id": "x"}}'
CLOUDEVENT = b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}'


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (CDEVENT, "json"),  # a CDEvent's specversion sits in its context: not a CloudEvent
        (CLOUDEVENT, "cloudevent"),
        (b"  \n" + CLOUDEVENT + b"\n", "cloudevent"),
        (b"[" + CLOUDEVENT + b"," + CDEVENT + b"]", "json"),
        (b"[]", "json"),
        (b"42", "json"),
        (CDEVENT + b"\n" + CLOUDEVENT + b"\n", "ndjson"),
        (b'{"a": 1}\n{"broken": \n{"c": 3}\n', "ndjson"),  # the server names line 2
        (b'{"a": 1', "json"),  # the server answers "invalid JSON" with the position
        (b'start_job,hostname=n1 event="x" 1700000000\n', "lineprotocol"),
        (b'node_down event="a"\nnode_up event="b"', "lineprotocol"),
        (b"\xef\xbb\xbf" + CLOUDEVENT, "cloudevent"),  # a byte-order mark, as Windows writes
    ],
)
def test_detect_format(data: bytes, expected: str) -> None:
    assert detect_format(data) == expected


@pytest.mark.parametrize(
    ("data", "fmt", "content_type"),
    [
        (CDEVENT, "auto", "application/json"),
        (CLOUDEVENT, "auto", "application/cloudevents+json"),
        (CDEVENT + b"\n" + CDEVENT, "auto", "application/x-ndjson"),
        (b'ev event="x"', "auto", "text/plain; charset=utf-8"),
        (b"[" + CLOUDEVENT + b"]", "batch", "application/cloudevents-batch+json"),
        (CLOUDEVENT, "json", "application/json"),
        (CDEVENT, "lineprotocol", "text/plain; charset=utf-8"),
    ],
)
def test_content_type(data: bytes, fmt: Any, content_type: str) -> None:
    prepared = prepare(data, SendOptions(format=fmt))
    assert header(prepared, "content-type") == content_type
    assert prepared.body == data
    assert header(prepared, "content-encoding") is None


def test_gzip_compresses_the_body_and_says_so() -> None:
    prepared = prepare(CDEVENT, SendOptions(gzip=True))
    assert header(prepared, "content-encoding") == "gzip"
    assert header(prepared, "content-type") == "application/json"  # of the data, not the gzip
    assert gzip.decompress(prepared.body) == CDEVENT


def test_token_is_sent_as_bearer() -> None:
    prepared = prepare(CDEVENT, SendOptions(token="s3cret"))
    assert header(prepared, "authorization") == "Bearer s3cret"


def test_token_must_be_one_ascii_word() -> None:
    with pytest.raises(SendFailed, match="ASCII without spaces") as info:
        prepare(CDEVENT, SendOptions(token="s3cret and more"))
    assert "s3cret" not in str(info.value)


def test_given_headers_win_over_the_chosen_ones() -> None:
    options = SendOptions(
        headers=(("Content-Type", "application/vnd.custom+json"), ("ce-specversion", "1.0"))
    )
    prepared = prepare(CDEVENT, options)
    assert header(prepared, "content-type") == "application/vnd.custom+json"
    assert header(prepared, "ce-specversion") == "1.0"
    assert [n.lower() for n, _ in prepared.headers].count("content-type") == 1


def test_empty_data_is_refused() -> None:
    with pytest.raises(SendFailed, match="nothing to send"):
        prepare(b" \n", SendOptions())


@pytest.mark.parametrize(
    ("encoding", "header_name", "prefix"),
    [("hex", "X-Hub-Signature-256", "sha256="), ("base64", "X-Signature", "")],
)
@pytest.mark.parametrize("compress", [False, True])
def test_hmac_signature_is_what_the_server_verifies(
    encoding: Any, header_name: str, prefix: str, compress: bool
) -> None:
    secret = "rotate-me"
    options = SendOptions(hmac=Hmac(secret, header_name, prefix, encoding), gzip=compress)
    prepared = prepare(CDEVENT, options)
    verifier = HmacAuth([secret], header=header_name, prefix=prefix, encoding=encoding)
    headers = {name.lower(): value for name, value in prepared.headers}
    verifier.before_body(headers)
    verifier.after_body(headers, prepared.body)  # the exact bytes on the wire
    stranger = HmacAuth(["another-secret"], header=header_name, prefix=prefix, encoding=encoding)
    with pytest.raises(AuthError):
        stranger.after_body(headers, prepared.body)


def test_hmac_signs_the_compressed_bytes() -> None:
    prepared = prepare(CDEVENT, SendOptions(hmac=Hmac("k"), gzip=True))
    headers = {name.lower(): value for name, value in prepared.headers}
    with pytest.raises(AuthError):
        HmacAuth(["k"]).after_body(headers, gzip.decompress(prepared.body))


def test_secrets_stay_out_of_reprs() -> None:
    options = SendOptions(token="tok-s3cret", hmac=Hmac("hmac-s3cret"))
    assert "s3cret" not in repr(options)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("X-Env: prod", ("X-Env", "prod")),
        ("ce-type:dev.cdevents.x", ("ce-type", "dev.cdevents.x")),
        ("X-Empty:", ("X-Empty", "")),
        ("Authorization: Bearer a:b", ("Authorization", "Bearer a:b")),
    ],
)
def test_parse_header(text: str, expected: tuple[str, str]) -> None:
    assert parse_header(text) == expected


@pytest.mark.parametrize("text", ["no colon", ": value", "Bad Name: v", "X-A: é"])
def test_parse_header_refuses_what_http_cannot_carry(text: str) -> None:
    with pytest.raises(SendFailed, match="-H"):
        parse_header(text)


def test_read_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "event.json").write_bytes(CDEVENT)
    assert read_data(f"@{tmp_path / 'event.json'}") == CDEVENT
    assert read_data('{"a": 1}') == b'{"a": 1}'
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert read_data("@-") == b"from stdin"
    with pytest.raises(SendFailed, match=r"--data @.*missing\.json: cannot read"):
        read_data(f"@{tmp_path / 'missing.json'}")


def test_credential_command_line_wins_over_environment(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    env = {"COLLECTOR_SEND_TOKEN": "from-env"}
    assert credential("given", None, "token", env) == "given"
    assert credential(None, secret_file, "token", env) == "from-file"
    assert credential(None, None, "token", env) == "from-env"
    assert credential(None, None, "token", {"COLLECTOR_SEND_TOKEN_FILE": str(secret_file)}) == (
        "from-file"
    )
    assert credential(None, None, "token", {"COLLECTOR_SEND_TOKEN": ""}) is None
    file_env = {"COLLECTOR_SEND_HMAC_SECRET_FILE": str(secret_file)}
    assert credential(None, None, "hmac-secret", file_env) == "from-file"


def test_credential_conflicts_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SendFailed, match="either --token or --token-file"):
        credential("a", tmp_path / "t", "token", {})
    with pytest.raises(SendFailed, match=r"--hmac-secret-file .*cannot read"):
        credential(None, tmp_path / "absent", "hmac-secret", {})
    (tmp_path / "blank").write_text("\n")
    with pytest.raises(SendFailed, match="is empty"):
        credential(None, tmp_path / "blank", "token", {})


PROBLEM = {
    "type": "about:blank",
    "title": "Invalid events",
    "status": 400,
    "detail": "1 of 2 rejected; event 1: context.id: missing",
    "errors": [{"location": "event 1", "detail": "context.id: missing"}],
    "accepted": 1,
}


def test_describe_a_problem_with_errors() -> None:
    message = describe_failure(Answer(400, orjson.dumps(PROBLEM).decode()), "http://h/w")
    assert message.splitlines() == [
        "send: http://h/w answered HTTP 400 Invalid events: "
        "1 of 2 rejected; event 1: context.id: missing",
        "  event 1: context.id: missing",
        "accepted: 1",  # the valid events of the request were stored
    ]


def test_describe_other_answers() -> None:
    unavailable = {"title": "Service unavailable", "detail": "the queue is full"}
    assert describe_failure(Answer(503, orjson.dumps(unavailable).decode()), "u", "1") == (
        "send: u answered HTTP 503 Service unavailable: the queue is full (retry after 1s)"
    )
    html = "<html>\n<body>Bad gateway</body></html>"
    assert describe_failure(Answer(502, html), "u") == (
        "send: u answered HTTP 502: <html> <body>Bad gateway</body></html>"
    )
    assert describe_failure(Answer(500, ""), "u") == "send: u answered HTTP 500"
    many = {"detail": "d", "errors": [{"location": f"line {n}", "detail": "x"} for n in range(30)]}
    lines = describe_failure(Answer(400, orjson.dumps(many).decode()), "u").splitlines()
    assert lines[-1] == "  … and 10 more"
    assert len(lines) == 22


def answering(status: int, body: bytes, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body)

    return httpx.MockTransport(handler)


def test_post_sends_the_prepared_bytes_and_returns_the_answer() -> None:
    seen: list[httpx.Request] = []
    options = SendOptions(url="http://collector.example/webhook/ci", token="t", gzip=True)
    prepared = prepare(CDEVENT, options)
    answer = post(prepared, options, answering(202, b'{"accepted":1}', seen))
    assert answer == Answer(202, '{"accepted":1}')
    assert seen[0].content == prepared.body
    assert seen[0].headers["authorization"] == "Bearer t"
    assert seen[0].headers["content-encoding"] == "gzip"


def test_post_raises_the_problem_detail_on_failure() -> None:
    options = SendOptions(url="http://user:pw@collector.example/webhook/ci")
    problem = orjson.dumps({"title": "Forbidden", "detail": "invalid token"})
    with pytest.raises(SendFailed) as info:
        post(prepare(CDEVENT, options), options, answering(403, problem, []))
    assert str(info.value) == (
        "send: http://user:***@collector.example/webhook/ci answered HTTP 403 Forbidden: "
        "invalid token"
    )


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ReadTimeout("timed out"), "no answer within 60s (--timeout)"),
        (httpx.ConnectError("refused"), "cannot connect to http://h/w: refused"),
        (httpx.RemoteProtocolError("peer closed"), "request to http://h/w failed: peer closed"),
    ],
)
def test_post_translates_transport_errors(error: Exception, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    options = SendOptions(url="http://h/w")
    with pytest.raises(SendFailed, match=re.escape(message)):
        post(prepare(CDEVENT, options), options, httpx.MockTransport(handler))


def test_post_refuses_a_url_without_scheme() -> None:
    options = SendOptions(url="collector.example/webhook")
    with pytest.raises(SendFailed, match=re.escape("invalid URL 'collector.example/webhook'")):
        post(prepare(CDEVENT, options), options)


def header(prepared: Prepared, name: str) -> str | None:
    values = [v for n, v in prepared.headers if n.lower() == name]
    assert len(values) <= 1
    return values[0] if values else None
