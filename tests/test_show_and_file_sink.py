"""``otel-maxim show`` on the records files people really have, and the file sink that writes them.

``show`` runs as a process on real files (as a person runs it); the sink writes real files, with
the failures a disk really has (a file size limit stands in for a full disk).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_maxim import tree as tree_module
from otel_maxim.records import parse
from otel_maxim.sinks import FileSink
from otel_maxim.tree import render_tree

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"


def _show(path: Path | str, *, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """``otel-maxim show PATH`` as a process (``stdin`` piped in as it is): its status, output and errors."""
    done = subprocess.run(
        [sys.executable, "-m", "otel_maxim.cli", "show", str(path)],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def _records_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "records.log"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _line(entity: str, id_: str, action: str, **data: object) -> str:
    return f"{entity}{{id={id_},action={action},data={json.dumps(data)}}}"


# --- show: size and shape of the file ------------------------------------------------------------------


def test_show_finds_a_session_among_those_seen_without_comparing_it_with_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of a chat service: one session per conversation.  Finding a session among those already
    seen compared it with each of them (20,000 sessions took 90 s): the work must grow with the
    number of records, not with its square.  Counted, not timed."""
    comparisons = [0]
    plain_eq = tree_module._Node.__eq__

    def counted(self: object, other: object) -> bool:
        comparisons[0] += 1
        return bool(plain_eq(self, other))

    monkeypatch.setattr(tree_module._Node, "__eq__", counted)
    sessions = 2_000
    lines = []
    for i in range(sessions):
        lines += [
            _line("session", f"chat-{i}", "create", name=f"chat {i}"),
            _line("trace", f"t{i}", "create", name="POST /chat", sessionId=f"chat-{i}"),
            _line("trace", f"t{i}", "end"),
            _line("session", f"chat-{i}", "end"),
        ]
    tree = render_tree(lines)
    assert len(tree.splitlines()) == 2 * sessions
    assert comparisons[0] <= sessions  # the old list scan made about sessions**2 / 2 of them


def test_show_draws_a_trace_once_when_two_runs_appended_the_same_trace_id(tmp_path: Path) -> None:
    """``make demo`` twice appends the quickstart's ``turn-1`` twice: one trace, holding both runs' spans."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MAXIM_", "OTEL_"))}
    environment["MAXIM_RECORDS_FILE"] = str(tmp_path / "demo.log")
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, str(QUICKSTART)], env=environment, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
    shown = _show(tmp_path / "demo.log")
    assert shown.returncode == 0, shown.stderr
    tree = shown.stdout.splitlines()
    assert [line for line in tree if line.startswith("session")] == ["session 'Support chat'  [support-chat-42]"]
    assert [line for line in tree if "trace 'turn-1'" in line] == ["  trace 'turn-1'  [turn-1]"]
    turn_1 = tree.index("  trace 'turn-1'  [turn-1]")
    assert [line.split("  [")[0] for line in tree[turn_1 + 1 : turn_1 + 5]] == [
        "    span 'retrieve-order'",
        "    span 'compose-answer'",
        "    span 'retrieve-order'",
        "    span 'compose-answer'",
    ]
    assert len([line for line in tree if "trace 'turn-2'" in line]) == 2  # each run's own id


def test_show_draws_a_span_chain_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    """A recursive agent under instrumentation nests its spans 1,200 deep: all of them are drawn."""
    lines = [_line("session", "deep", "create"), _line("trace", "root", "create", name="root", sessionId="deep")]
    lines.append(_line("trace", "root", "add-span", id="s1200", name="level-1200"))
    lines += [_line("span", f"s{n + 1}", "add-span", id=f"s{n}", name=f"level-{n}") for n in range(1199, 0, -1)]
    shown = _show(_records_file(tmp_path, lines))
    assert shown.returncode == 0, shown.stderr[-500:]
    assert " " * (2 + 2 * 1200) + "span 'level-1'  [s1]  (not ended)" in shown.stdout.splitlines()


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            [
                _line("session", "S", "create"),
                _line("span", "x", "add-span", id="x"),
                _line("span", "x", "create", sessionId="S"),
            ],
            ["session  [S]  (not ended)", "span  [x]  (not ended)"],
            id="a-span-its-own-child",
        ),
        pytest.param(
            [
                _line("trace", "t", "create", name="t"),
                _line("trace", "t", "add-span", id="a", name="a"),
                _line("span", "a", "add-span", id="b", name="b"),
                _line("span", "b", "add-span", id="a", name="a"),
                _line("span", "b", "add-span", id="b", name="b"),
            ],
            ["trace 't'  [t]  (not ended)", "  span 'a'  [a]  (not ended)", "    span 'b'  [b]  (not ended)"],
            id="a-span-the-child-of-its-descendant",
        ),
    ],
)
def test_show_draws_each_node_of_a_cycle_once(tmp_path: Path, lines: list[str], expected: list[str]) -> None:
    """Records that name a span as its own child, or as its descendant's: each is drawn where it was
    first named, once, and ``show`` neither hangs nor crashes."""
    shown = _show(_records_file(tmp_path, lines))
    assert shown.returncode == 0, shown.stderr[-500:]
    assert shown.stdout.splitlines() == expected


def test_a_line_of_json_nested_too_deeply_is_not_a_record(tmp_path: Path) -> None:
    """``parse`` says ``ValueError`` for every bad line, so ``show`` counts this one like any other."""
    deep = 'trace{id=t,action=create,data={"a":' + "[" * 100_000 + "]" * 100_000 + "}}"
    with pytest.raises(ValueError, match="nested too deeply"):
        parse(deep)
    shown = _show(_records_file(tmp_path, [_line("trace", "t1", "create", name="ok"), deep]))
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout.splitlines() == ["trace 'ok'  [t1]  (not ended)", "(1 lines were not records)"]


def test_a_line_that_is_not_utf8_is_not_a_record_in_a_file_or_on_standard_input(tmp_path: Path) -> None:
    """One stray line spoils itself only, whether the file is named or piped in."""
    path = tmp_path / "records.log"
    path.write_bytes(
        (
            _line("session", "s1", "create", name="S") + "\n" + _line("trace", "t1", "create", sessionId="s1") + "\n"
        ).encode()
        + b"\xff\xfe stray bytes\n"
    )
    expected = ["session 'S'  [s1]  (not ended)", "  trace  [t1]  (not ended)", "(1 lines were not records)"]
    for shown in (_show(path), _show("-", stdin=path.read_bytes())):
        assert (shown.returncode, shown.stderr) == (0, "")
        assert shown.stdout.splitlines() == expected


# --- show: what it prints ------------------------------------------------------------------------------


def test_show_escapes_error_messages_and_model_names(tmp_path: Path) -> None:
    """A multi-line exception message cannot forge a line of the tree, nor a model name reach the terminal."""
    lines = [
        _line("trace", "t1", "create", name="turn-1"),
        _line("trace", "t1", "add-span", id="s1", name="validate-order"),
        _line("span", "s1", "add-error", error={"message": "2 validation errors\ntrace 'injected'  [fake]"}),
        _line("trace", "t1", "add-generation", id="g1", name="chat", model="gpt-4o\x1b[2J\x1b[31mRED"),
    ]
    shown = _show(_records_file(tmp_path, lines))
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    assert shown.stdout.splitlines() == [
        "trace 'turn-1'  [t1]  (not ended)",
        "  span 'validate-order'  [s1]  error: 2 validation errors\\ntrace 'injected'  [fake]  (not ended)",
        "  generation 'chat'  [g1]  model=gpt-4o\\x1b[2J\\x1b[31mRED  (not ended)",
    ]


def test_show_draws_a_failed_model_call_and_a_session_named_in_a_later_turn(tmp_path: Path) -> None:
    """The records the mapping writes for ``session(name=...)`` in a later turn and a generation that failed."""
    lines = [
        _line("session", "chat-1", "create"),
        _line("trace", "t1", "create", name="turn-1", sessionId="chat-1"),
        _line("session", "chat-1", "update", name="Refund request", tags={"team": "billing"}),
        _line("trace", "t1", "add-generation", id="g1", name="chat gpt-4o", model="gpt-4o"),
        _line("generation", "g1", "result", result={"error": {"message": "rate limited", "code": ""}, "id": "g1"}),
        _line("generation", "g1", "end"),
    ]
    shown = _show(_records_file(tmp_path, lines))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "session 'Refund request'  [chat-1]  (not ended)",
        "  trace 'turn-1'  [t1]  (not ended)",
        "    generation 'chat gpt-4o'  [g1]  model=gpt-4o error: rate limited",
    ]


def test_show_into_a_reader_that_leaves_stops_quietly(tmp_path: Path) -> None:
    """``otel-maxim show FILE | head``: no message blaming the file, no traceback, SIGPIPE's status."""
    lines = [_line("session", "s1", "create", name="S")]
    lines += [_line("trace", f"t{i}", "create", name="T", sessionId="s1") for i in range(20_000)]
    path = _records_file(tmp_path, lines)
    with subprocess.Popen(
        [sys.executable, "-m", "otel_maxim.cli", "show", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as show:
        assert show.stdout is not None and show.stderr is not None
        assert show.stdout.readline() == b"session 'S'  [s1]  (not ended)\n"
        show.stdout.close()  # what head does after its lines
        errors = show.stderr.read()
        status = show.wait(timeout=60)
    assert (status, errors) == (141, b"")


def test_show_of_standard_input_when_it_is_closed_says_so(tmp_path: Path) -> None:
    """``otel-maxim show - <&-`` ended in a traceback (``sys.stdin`` is None then)."""
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" -m otel_maxim.cli show - <&-', sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "otel-maxim: cannot read -: standard input is closed\n"


# --- the file sink -------------------------------------------------------------------------------------


_PARTIAL_WRITE = """
import logging, resource, signal, sys
from otel_maxim.sinks import FileSink

logging.basicConfig(level=logging.ERROR, format="%(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG, as ENOSPC on a full disk
sink = FileSink(sys.argv[1])
heads = [f'trace{{id=t{i},action=create,data={{"name":"' for i in range(4)]
lines = [head + "x" * (96 - len(head)) + '"}}' for head in heads]  # 100 bytes each with its newline
resource.setrlimit(resource.RLIMIT_FSIZE, (250, resource.RLIM_INFINITY))  # "250 bytes left on the disk"
print("first batch", sink.write(lines), flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space again
print("second batch", sink.write(['trace{id=after,action=create,data={"name":"after"}}']), flush=True)
sink.close(5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
def test_a_batch_cut_by_a_full_disk_leaves_the_next_record_on_a_line_of_its_own(tmp_path: Path) -> None:
    """The kernel writes part of a batch, then fails: the log says how many records are missing, and the
    next record starts a new line instead of finishing the cut one."""
    path = tmp_path / "records.log"
    run = subprocess.run(
        [sys.executable, "-c", _PARTIAL_WRITE, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["first batch False", "second batch True"]
    assert f"Could not write the last 2 of 4 records to {path}" in run.stderr
    lines = path.read_text().splitlines()
    assert [parse(line).id for line in lines[:2]] == ["t0", "t1"]
    assert len(lines) == 4 and len(lines[2]) == 50  # half of the third record, on a line of its own
    assert parse(lines[3]).id == "after"


def test_records_appended_to_a_file_cut_mid_line_start_on_a_line_of_their_own(tmp_path: Path) -> None:
    """A writer killed mid-record left part of a line: the next process does not glue its first record on."""
    path = tmp_path / "records.log"
    path.write_text('trace{id=aaaa,action=create,data={"name":"cut off mid-wri')
    sink = FileSink(path)
    assert sink.write([_line("trace", "t1", "create", name="next"), _line("trace", "t1", "end")])
    assert sink.write([_line("trace", "t2", "create", name="later")])
    sink.close(5)
    lines = path.read_text().splitlines()
    assert lines[0] == 'trace{id=aaaa,action=create,data={"name":"cut off mid-wri'
    assert [parse(line).id for line in lines[1:]] == ["t1", "t1", "t2"]


@pytest.mark.parametrize("how", ["renamed", "removed"])
def test_after_the_file_is_rotated_or_removed_records_go_to_a_new_file_at_the_path(tmp_path: Path, how: str) -> None:
    """logrotate renames the file (or someone deletes it): later records go to the path, not to the old file."""
    path = tmp_path / "records.log"
    sink = FileSink(path)
    assert sink.write([_line("trace", "before", "create")])
    if how == "renamed":
        path.rename(tmp_path / "records.log.1")
    else:
        path.unlink()
    assert sink.write([_line("trace", "after", "create")])
    assert sink.write([_line("trace", "later", "create")])
    sink.close(5)
    assert [parse(line).id for line in path.read_text().splitlines()] == ["after", "later"]
    if how == "renamed":
        assert [parse(line).id for line in (tmp_path / "records.log.1").read_text().splitlines()] == ["before"]


@pytest.fixture
def _umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@pytest.mark.usefixtures("_umask_022")
def test_the_records_file_is_private_like_the_spool_and_an_existing_one_keeps_its_mode(tmp_path: Path) -> None:
    """Prompts and answers are in the records file: created ``0600`` (as spool files are), whatever the umask."""
    new = tmp_path / "new.log"
    sink = FileSink(new)
    assert sink.write([_line("trace", "t1", "create")])
    sink.close(5)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    shared = tmp_path / "shared.log"
    shared.write_text("")
    shared.chmod(0o640)  # chosen by its owner: kept
    sink = FileSink(shared)
    assert sink.write([_line("trace", "t1", "create")])
    sink.close(5)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640


def test_show_reads_what_the_sink_wrote_around_a_cut_line(tmp_path: Path) -> None:
    """End to end: a cut line from an earlier writer is one bad line, and every record after it is drawn."""
    path = tmp_path / "records.log"
    path.write_text(_line("session", "s1", "create", name="S") + "\n" + 'trace{id=cut,action=create,data={"na')
    sink = FileSink(path)
    assert sink.write([_line("trace", "t1", "create", name="T", sessionId="s1"), _line("trace", "t1", "end")])
    sink.close(5)
    shown = _show(path)
    assert shown.stdout == textwrap.dedent(
        """\
        session 'S'  [s1]  (not ended)
          trace 'T'  [t1]
        (1 lines were not records)
        """
    )
