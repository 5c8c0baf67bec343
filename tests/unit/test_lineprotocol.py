"""The line-protocol parser against the InfluxDB syntax and ClusterCockpit's message kinds."""

from __future__ import annotations

import pytest

from collector.lineprotocol import LineProtocolError, Point, parse_line, parse_lines, timestamp_ns


def test_clustercockpit_event_with_tags_and_timestamp() -> None:
    point = parse_line(
        'start_job,cluster=fritz,hostname=f0101,type=node,type-id=0 event="{\\"jobId\\":123}"'
        " 1700000000000000000"
    )
    assert point == Point(
        measurement="start_job",
        tags={"cluster": "fritz", "hostname": "f0101", "type": "node", "type-id": "0"},
        fields={"event": '{"jobId":123}'},
        timestamp=1700000000000000000,
    )
    assert point.kind == "event"


def test_log_metric_and_control_kinds() -> None:
    assert parse_line('slurmd,hostname=n1,loglevel=warn log="disk almost full"').kind == "log"
    assert parse_line("cpu_load,hostname=n1,type=node value=1.5 1700000000").kind == "metric"
    assert parse_line('freq,hostname=n1,method=PUT control="2400"').kind == "control"
    assert parse_line('energy,hostname=n1 query="SELECT power"').kind == "query"  # cc-lib NewQuery
    with pytest.raises(LineProtocolError, match="no ClusterCockpit field"):
        _ = parse_line("weird,hostname=n1 count=3i").kind


def test_escapes_in_measurement_tags_and_strings() -> None:
    point = parse_line(
        r'my\ event,fs\=name=/home\,scratch,path=a\ b msg="say \"hi\" \\ bye",n=-3i,u=4u,ok=T'
    )
    assert point.measurement == "my event"
    assert point.tags == {"fs=name": "/home,scratch", "path": "a b"}
    assert point.fields == {"msg": 'say "hi" \\ bye', "n": -3, "u": 4, "ok": True}
    assert point.timestamp is None


def test_string_escapes_of_clustercockpits_encoder() -> None:
    # cc-line-protocol (cc-metric-collector's sinks) writes a line break, a carriage return and
    # a tab in a string field as \n, \r and \t; its decoder reads them back. Other
    # backslashes stay as they are.
    point = parse_line(r'ccmc,hostname=n1 log="failed:\n\tat x\r\nC:\\new \d" 1')
    assert point.fields == {"log": "failed:\n\tat x\r\nC:\\new \\d"}


def test_string_fields_may_hold_spaces_commas_and_equals() -> None:
    point = parse_line('ev,hostname=n1 event="a, b = c",value=2 42')
    assert point.fields == {"event": "a, b = c", "value": 2.0}
    assert point.timestamp == 42


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("just_a_measurement", "not line protocol"),
        ("m,hostname value=1", "tag 'hostname': expected key=value"),
        ("m value=", "field value: missing value"),
        ("m value=abc", "field value: 'abc' is not a number"),
        ("m value=nan", "not a finite number"),
        ("m value=-1u", "not a number"),
        ('m event="unterminated', "not line protocol"),
        ("m value=1 notatime", "not line protocol"),
    ],
)
def test_bad_lines_name_the_problem(line: str, message: str) -> None:
    with pytest.raises(LineProtocolError, match=message):
        parse_line(line)


def test_parse_lines_keeps_good_lines_and_numbers_bad_ones() -> None:
    text = (
        "# a comment\n"
        'start_job,hostname=a event="x" 1\n'
        "\n"
        "garbage\n"
        'node_down,hostname=b event="y" 2\n'
    )
    results = parse_lines(text)
    assert [(number, line) for number, line, _ in results] == [
        (2, 'start_job,hostname=a event="x" 1'),
        (4, "garbage"),
        (5, 'node_down,hostname=b event="y" 2'),
    ]
    assert isinstance(results[0][2], Point)
    assert isinstance(results[1][2], LineProtocolError)
    assert isinstance(results[2][2], Point)


def test_a_string_field_may_span_lines() -> None:
    # influxdb-client-go (ccMessage.ToLineProtocol, cc-slurm-adapter) writes a line break in a
    # string field as it is; InfluxDB's and ClusterCockpit's decoders read on to the closing
    # quote. The entry keeps the number of its first line, the next ones theirs.
    text = (
        'ccb,hostname=a,note=say"hi log="Traceback:\n  File \\"x\\"\n\nend" 1\n'
        '# "a comment"\n'
        'ccb,hostname=b log="one" 2\r\n'
    )
    [(first, entry, point), (sixth, _, other)] = parse_lines(text)
    assert (first, sixth) == (1, 6)
    assert entry == text.split("\n# ")[0]
    assert isinstance(point, Point)
    assert point.tags == {"hostname": "a", "note": 'say"hi'}
    assert point.fields == {"log": 'Traceback:\n  File "x"\n\nend'}
    assert isinstance(other, Point)


def test_an_unclosed_string_spoils_only_its_own_line() -> None:
    text = 'a,hostname=x event="open\nb value=1 1\nc event="y" 2\nd event="z\ne event="w" 3'
    results = parse_lines(text)
    assert [(n, isinstance(p, Point)) for n, _, p in results] == [
        (1, False),
        (2, True),
        (3, True),
        (4, False),
        (5, True),
    ]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1_700_000_000, 1_700_000_000_000_000_000),
        (1_700_000_000_123, 1_700_000_000_123_000_000),
        (1_700_000_000_123_456, 1_700_000_000_123_456_000),
        (1_700_000_000_123_456_789, 1_700_000_000_123_456_789),
    ],
)
def test_timestamp_precision_is_guessed_from_magnitude(timestamp: int, expected: int) -> None:
    assert timestamp_ns(timestamp) == expected


def test_explicit_precision_wins() -> None:
    assert timestamp_ns(1_700_000_000_000, "s") == 1_700_000_000_000 * 10**9
    with pytest.raises(LineProtocolError, match="precision 'h'"):
        timestamp_ns(1, "h")
