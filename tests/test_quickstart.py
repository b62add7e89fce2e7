"""`make demo` runs examples/quickstart.py: it must keep working and show the seed's four steps."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import read_records
from tests.record_checks import assert_parent_first

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"


def test_quickstart_writes_the_session_and_shows_it(tmp_path: Path) -> None:
    records_file = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAXIM_", "OTEL_"))}
    env["MAXIM_RECORDS_FILE"] = str(records_file)
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"Wrote 13 Maxim records to {records_file}" in done.stdout
    assert "session 'Support chat'  [support-chat-42]" in done.stdout
    assert "    span 'lookup-shipping'" in done.stdout
    records = read_records(records_file)
    assert_parent_first(records)
    assert [(r.entity, r.action) for r in records if r.entity == "session"] == [
        ("session", "create"),
        ("session", "end"),
    ]
    assert {r.data.get("sessionId") for r in records if r.entity == "trace" and r.action == "create"} == {
        "support-chat-42"
    }


SERVICE = QUICKSTART.parent / "service"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_examples_say_what_went_wrong_in_a_line_not_a_traceback(tmp_path: Path) -> None:
    """A records file that cannot be written, a service that is not there, a port that is taken: each
    ended in a traceback after (or instead of) a clear message."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAXIM_", "OTEL_"))}
    unwritable = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        env={**env, "MAXIM_RECORDS_FILE": str(tmp_path)},  # a directory
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    absent = subprocess.run(
        [sys.executable, str(SERVICE / "client.py"), "--url", f"http://127.0.0.1:{_free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, str(SERVICE / "fake_model.py"), "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    for done in (unwritable, absent, busy):
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"Could not read the records back from {tmp_path}: Is a directory" in unwritable.stderr
    assert "client.py: the service at http://127.0.0.1:" in absent.stderr and "did not answer" in absent.stderr
    assert f"fake_model.py: cannot listen on 127.0.0.1:{port}: Address already in use" in busy.stderr
