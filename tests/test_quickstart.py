"""`make demo` runs examples/quickstart.py: it must keep working and show the seed's four steps."""

from __future__ import annotations

import os
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
