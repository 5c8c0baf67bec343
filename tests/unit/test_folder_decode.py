"""FolderSource without the pipeline: decoding a file's bytes, and which files are picked up."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.settings import FolderSourceSettings
from collector.sources.folder import FolderSource, _free_name, shown
from tests.conftest import SPEC

RECEIVED = datetime(2025, 1, 2, tzinfo=UTC)
CONFORMANCE = SPEC / "v0.5.1" / "conformance"


def source(tmp_path: Path, **settings: Any) -> FolderSource:
    folder = FolderSource(
        "inbox", FolderSourceSettings(type="folder", path=tmp_path / "inbox", **settings), 100
    )
    folder.prepare()
    return folder


def cdevent(event_id: str) -> dict[str, Any]:
    return {
        "context": {
            "id": event_id,
            "source": "/ci",
            "type": "dev.cdevents.build.started.0.2.0",
            "timestamp": "2024-05-06T07:08:09Z",
        },
        "subject": {"id": "build/1"},
    }


def line(doc: Any) -> bytes:
    return orjson.dumps(doc)


# -- decode -----------------------------------------------------------------------------------


def test_json_file_with_one_event(tmp_path: Path) -> None:
    data = (CONFORMANCE / "pipelinerun_started.json").read_bytes()

    events, rejected = source(tmp_path).decode(data, "run.json", RECEIVED)

    assert rejected == []
    [event] = events
    assert event.id == orjson.loads(data)["context"]["id"]
    assert event.type == "dev.cdevents.pipelinerun.started.0.3.0"
    assert (event.received_via, event.received_at) == ("inbox", RECEIVED)
    assert event.metadata == {"file": "run.json"}
    assert orjson.loads(event.payload) == orjson.loads(data)


def test_json_file_with_an_invalid_event_is_one_rejection(tmp_path: Path) -> None:
    data = line({"context": {"id": "x"}, "subject": {"id": "s"}})

    events, [rejected] = source(tmp_path).decode(data, "bad.json", RECEIVED)

    assert events == []
    assert rejected.reason == "context.source: missing"
    assert rejected.location is None
    assert rejected.raw == data
    assert rejected.metadata == {"file": "bad.json"}
    assert (rejected.received_via, rejected.received_at) == ("inbox", RECEIVED)


def test_json_array_rejects_bad_items_by_index(tmp_path: Path) -> None:
    bad = cdevent("b")
    del bad["subject"]
    data = line([cdevent("a"), 42, bad, cdevent("c")])

    events, rejected = source(tmp_path).decode(data, "sub/many.json", RECEIVED)

    assert [e.id for e in events] == ["a", "c"]
    assert [e.metadata for e in events] == [
        {"file": "sub/many.json", "index": 0},
        {"file": "sub/many.json", "index": 3},
    ]
    assert [(r.location, r.reason) for r in rejected] == [
        ("index 1", "an event must be a JSON object, not a number"),
        ("index 2", "subject: missing or not an object"),
    ]
    assert [r.metadata for r in rejected] == [
        {"file": "sub/many.json", "index": 1},
        {"file": "sub/many.json", "index": 2},
    ]
    assert orjson.loads(rejected[1].raw) == bad
    assert rejected[0].message == "index 1: an event must be a JSON object, not a number"


def test_every_document_is_stored_as_written(tmp_path: Path) -> None:
    # Numbers a double would round, a pretty-printed item, a byte-order mark (Windows tools).
    first = line(cdevent("a"))[:-1] + b', "n": 123456789012345678901234567890}'
    second = (
        orjson.dumps(cdevent("b"), option=orjson.OPT_INDENT_2)[:-1]
        + b', "d": 0.10000000000000000001}'
    )
    data = b"\xef\xbb\xbf[" + first + b",\n  " + second + b"\n]\n"

    events, rejected = source(tmp_path).decode(data, "many.json", RECEIVED)

    assert rejected == []
    assert [e.payload for e in events] == [first, second]
    [single], _ = source(tmp_path).decode(b"\xef\xbb\xbf" + first, "one.json", RECEIVED)
    assert single.payload == first


def test_empty_json_array_has_nothing_to_say(tmp_path: Path) -> None:
    assert source(tmp_path).decode(b"[]", "empty.json", RECEIVED) == ([], [])


@pytest.mark.parametrize("data", [b'{"context": ', b"", b"\xff\xfe{}", b"{}\n{}"])
def test_invalid_json_is_one_rejection_for_the_whole_file(tmp_path: Path, data: bytes) -> None:
    events, [rejected] = source(tmp_path).decode(data, "broken.json", RECEIVED)

    assert events == []
    assert rejected.reason.startswith("invalid JSON: ")
    assert rejected.location is None
    assert rejected.raw == data
    assert rejected.metadata == {"file": "broken.json"}


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_json_lines_are_decoded_per_line(tmp_path: Path, suffix: str) -> None:
    bad = cdevent("x")
    bad["context"]["timestamp"] = "soon"
    data = b"\n".join(
        [
            line(cdevent("a")),
            b"",
            b"   ",
            b'{"context": ',
            line(bad),
            line(cdevent("b")) + b"\r",
            b"[1, 2]",
            line(cdevent("c")),
            b"",
        ]
    )
    name = f"events{suffix}"

    events, rejected = source(tmp_path).decode(data, name, RECEIVED)

    assert [e.id for e in events] == ["a", "b", "c"]
    assert [e.metadata for e in events] == [
        {"file": name, "line": 1},
        {"file": name, "line": 6},
        {"file": name, "line": 8},
    ]
    assert events[1].payload == line(cdevent("b"))  # the line, without its \r
    assert [r.location for r in rejected] == ["line 4", "line 5", "line 7"]
    assert rejected[0].reason.startswith("invalid JSON: ")
    assert rejected[0].raw == b'{"context":'
    assert (
        rejected[1].reason
        == "context.timestamp: 'soon' is not an RFC 3339 timestamp (like 2024-05-01T12:00:00Z)"
    )
    assert rejected[1].raw == line(bad)
    assert rejected[2].reason == "an event must be a JSON object, not an array"
    assert [r.metadata for r in rejected] == [
        {"file": name, "line": 4},
        {"file": name, "line": 5},
        {"file": name, "line": 7},
    ]


def test_plain_json_lines_take_the_configured_type_and_source(tmp_path: Path) -> None:
    folder = source(tmp_path, event_type="com.example.reading", event_source="/lab")
    data = b'{"t": 21}\n{"t": 22}\n{"t": 21}\n'

    events, rejected = folder.decode(data, "r.jsonl", RECEIVED)

    assert rejected == []
    assert [(e.type, e.source, e.family) for e in events] == [
        ("com.example.reading", "/lab", "raw")
    ] * 3
    assert events[0].id == events[2].id != events[1].id


def test_plain_json_without_a_configured_type_is_rejected(tmp_path: Path) -> None:
    events, [rejected] = source(tmp_path).decode(b'{"t": 21}\n', "r.ndjson", RECEIVED)

    assert events == []
    assert rejected.location == "line 1"
    assert rejected.reason.startswith("type: plain JSON carries no event type; set event_type")


def test_an_empty_json_lines_file_has_nothing_to_say(tmp_path: Path) -> None:
    assert source(tmp_path).decode(b"\n\n", "empty.jsonl", RECEIVED) == ([], [])


# -- which files are picked up ----------------------------------------------------------------


def touch(path: Path, age_s: float = 3600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def relative(folder: FolderSource, paths: Any) -> list[str]:
    return [p.relative_to(folder.path).as_posix() for p in paths]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    for name in [
        "a.json",
        "b.jsonl",
        "c.ndjson",
        "notes.txt",
        ".hidden.json",
        "upload.tmp",
        "upload.part",
        "upload.json.partial",
        "sub/d.json",
        "sub/deeper/e.jsonl",
        ".git/f.json",
        "done/old.json",
        "failed/bad.json",
        ".processing/claimed.json",
    ]:
        touch(inbox / name)
    return inbox


def test_default_patterns_pick_json_files_at_the_top(tree: Path, tmp_path: Path) -> None:
    folder = source(tmp_path)

    assert relative(folder, folder._ready_files()) == ["a.json", "b.jsonl", "c.ndjson"]


def test_recursive_descends_but_never_into_done_failed_or_claimed(
    tree: Path, tmp_path: Path
) -> None:
    folder = source(tmp_path, recursive=True)

    assert relative(folder, folder._ready_files()) == [
        "a.json",
        "b.jsonl",
        "c.ndjson",
        "sub/d.json",
        "sub/deeper/e.jsonl",
    ]


def test_partial_uploads_are_skipped_whatever_the_patterns(tree: Path, tmp_path: Path) -> None:
    folder = source(tmp_path, patterns=["*"])

    assert relative(folder, folder._candidates(folder.path)) == [
        "a.json",
        "b.jsonl",
        "c.ndjson",
        "notes.txt",
    ]


def test_patterns_choose_the_files(tree: Path, tmp_path: Path) -> None:
    folder = source(tmp_path, patterns=["*.txt", "b.*"])

    assert relative(folder, folder._candidates(folder.path)) == ["b.jsonl", "notes.txt"]


def test_configured_done_and_failed_folders_inside_the_inbox_are_skipped(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    touch(inbox / "archive" / "x.json")
    touch(inbox / "errors" / "y.json")
    touch(inbox / "done" / "z.json")  # not the done folder here: an ordinary subfolder
    folder = source(
        tmp_path, recursive=True, done_dir=inbox / "archive", failed_dir=inbox / "errors"
    )

    assert relative(folder, folder._ready_files()) == ["done/z.json"]


def test_a_file_is_ready_once_unchanged_for_settle_time(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    touch(inbox / "old.json", age_s=120)
    touch(inbox / "fresh.json", age_s=0)
    touch(inbox / "future.json", age_s=-3600)  # a clock skew must not make it ready early

    settled = source(tmp_path, settle_s=60)
    immediate = source(tmp_path, settle_s=0)

    assert relative(settled, settled._ready_files()) == ["old.json"]
    assert relative(immediate, immediate._ready_files()) == ["fresh.json", "old.json"]


def test_a_missing_folder_has_no_candidates(tmp_path: Path) -> None:
    folder = source(tmp_path)

    assert list(folder._candidates(tmp_path / "nowhere")) == []


def test_a_claimed_file_keeps_its_original_name(tmp_path: Path) -> None:
    folder = source(tmp_path, recursive=True)
    original = touch(folder.path / "sub dir" / "a~b%20.json")

    claim = folder._claim(original)

    assert claim is not None
    assert claim.token is not None
    assert claim.token.parent == folder.path / ".processing"
    assert claim.path == claim.token / "sub dir" / "a~b%20.json"
    assert claim.path.is_file()
    assert not original.exists()
    assert claim.relative == "sub dir/a~b%20.json"
    assert list(folder._ready_files()) == []
    assert folder._claim(original) is None  # already taken
    assert len(list(folder.claimed_dir.iterdir())) == 1  # the failed attempt left nothing


def test_names_too_long_to_encode_are_claimed(tmp_path: Path) -> None:
    # 250 bytes each: the limit of one name is 255, and percent-encoding made them 1,500.
    long = "é" * 122 + ".json"
    folder = source(tmp_path, recursive=True)
    original = touch(folder.path / ("ü" * 125) / long)

    claim = folder._claim(original)

    assert claim is not None
    assert claim.relative == f"{'ü' * 125}/{long}"


def test_a_live_claim_is_not_recovered_and_a_dead_one_is(tmp_path: Path) -> None:
    first = source(tmp_path, recursive=True)
    claim = first._claim(touch(first.path / "sub" / "a.json"))
    assert claim is not None
    second = source(tmp_path, recursive=True)

    assert list(second._recover()) == []  # the first collector holds the claim's lock

    assert claim.lock is not None
    os.close(claim.lock)  # as when the first collector dies
    [recovered] = list(second._recover())
    assert (recovered.path, recovered.relative) == (claim.path, "sub/a.json")
    assert list(first._recover()) == []  # now the second one holds it
    second._release(recovered)
    assert recovered.path.is_file()  # released unfinished: still claimed, for the next start


def test_recovery_clears_empty_claim_folders_and_reads_old_claims(tmp_path: Path) -> None:
    folder = source(tmp_path)
    (folder.claimed_dir / "1-1" / "sub" / "deeper").mkdir(parents=True)  # left after a move
    old = touch(folder.claimed_dir / "sub%20dir%2Fa~b%2520.json~1700000000000000000")

    [claim] = list(folder._recover())

    assert (claim.path, claim.relative, claim.token) == (old, "sub dir/a~b%20.json", None)
    assert sorted(p.name for p in folder.claimed_dir.iterdir()) == [old.name]


def test_a_name_that_does_not_fit_is_shortened_keeping_its_suffix(tmp_path: Path) -> None:
    long = tmp_path / ("é" * 125 + ".json")  # 255 bytes
    long.write_text("{}")

    free = _free_name(long)  # taken: a new name, as long as allowed
    report = _free_name(tmp_path / "fresh.json", reserve=len(".error.txt"))
    short_enough = _free_name(tmp_path / ("é" * 125 + ".json"), reserve=len(".error.txt"))

    assert len(os.fsencode(free.name)) <= 255
    assert free.suffix == ".json"
    assert free.name.startswith("é" * 100)
    assert not free.exists()
    assert report.name == "fresh.json"
    assert len(os.fsencode(short_enough.name + ".error.txt")) <= 255
    assert short_enough.name.encode().decode("utf-8")  # no character cut in two


def test_names_are_shown_as_valid_text() -> None:
    assert shown(os.fsdecode(b"bad\xffname.json")) == "bad\\xffname.json"
    assert shown("caf\u00e9.json") == "caf\u00e9.json"
