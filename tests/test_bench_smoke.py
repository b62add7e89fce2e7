"""The benchmarks in bench/ keep working: each runs in its smoke mode (``--quick``) and prints its ratio last.

No timing is asserted: the numbers of a smoke run mean nothing, and the test suite runs on
machines of every speed.  bench_delivery.py has its own smoke test (tests/test_delivery.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RATIO_LINE = re.compile(r"^ratio: \d+\.\d+ \(target (<=|>=) \d+\.\d+\)$")


def _run(*args: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a benchmark; its temporary files (maxim-py's spill directory) go under ``tmp_path``."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("script", ["bench_processor.py", "bench_export.py", "bench_vs_maxim_py.py"])
def test_the_benchmark_runs_quick_and_prints_its_ratio_last(script: str, tmp_path: Path) -> None:
    done = _run(str(BENCH / script), "--quick", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    assert RATIO_LINE.match(lines[-1]), lines[-1]


@pytest.mark.parametrize(("flags", "label"), [((), "orjson"), (("--standard-json",), "json")])
def test_the_export_benchmark_says_what_writes_the_json(flags: tuple[str, ...], label: str, tmp_path: Path) -> None:
    done = _run(str(BENCH / "bench_export.py"), "--quick", *flags, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"| MaximSpanExporter -> discarding sink, {label} " in done.stdout


def test_run_all_prints_a_markdown_table(tmp_path: Path) -> None:
    done = _run(str(BENCH / "run_all.py"), "--quick", "--skip-delivery", tmp_path=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "| benchmark | ours | baseline | ratio | target | met? |" in out
    for name in (
        "1. application-thread cost per span",
        "2. export work per span",
        "2. export work per span (standard json)",
        "3. application-thread cost",
    ):
        assert name in out
    assert "Machine: " in out
