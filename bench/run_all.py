"""Run every benchmark, each in its own process, and print a Markdown table of the results.

Run from the repository root::

    python bench/run_all.py                    # the table for the README (a few minutes)
    python bench/run_all.py --quick            # a smoke run of every benchmark
    python bench/run_all.py --skip-delivery    # without bench_delivery.py (the slowest)

Runs bench_processor.py, bench_export.py, bench_vs_maxim_py.py and, if it exists,
bench_delivery.py; prints each one's output as it finishes, then the table
(benchmark, ours, baseline, ratio, target, met?) and the machine it ran on.
Exits 1 if a benchmark failed to run (a target not met is reported, not an error).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Each ratio benchmark, and the arguments of each run of it (export: with orjson if installed, and without).
RATIO_BENCHMARKS: tuple[tuple[str, list[str]], ...] = (
    ("bench_processor.py", []),
    ("bench_export.py", []),
    ("bench_export.py", ["--standard-json"]),
    ("bench_vs_maxim_py.py", []),
)
DELIVERY = "bench_delivery.py"
#: The packages whose releases move the figures (the OTLP baseline's encoder and protobuf's above all).
MEASURED_PACKAGES = (
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-common",
    "protobuf",
    "orjson",
    "maxim-py",
    "requests",
    "urllib3",
)
DELIVERY_TARGET_SPANS_PER_SECOND = 20_000


@dataclass
class Row:
    benchmark: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: str


def run(script: str, args: list[str]) -> tuple[int, str, str]:
    command = [sys.executable, str(HERE / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    return done.returncode, done.stdout, done.stderr


def cost(ns: float, unit: str) -> str:
    return f"{ns / 1000:.2f} µs/{unit}"


def ratio_row(script: str, quick: bool, extra: list[str]) -> tuple[Row | None, str]:
    with tempfile.TemporaryDirectory(prefix="otel-maxim-bench-") as work:
        path = os.path.join(work, "result.json")
        code, out, err = run(script, (["--quick"] if quick else []) + extra + ["--json", path])
        if code != 0 or not os.path.exists(path):
            return None, f"{out}{err}\n{script} failed (exit code {code})"
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    row = Row(
        benchmark=data["benchmark"],
        ours=f"{cost(data['ours_ns'], data['unit'])} ({data['ours_label']})",
        baseline=f"{cost(data['baseline_ns'], data['unit'])} ({data['baseline_label']})",
        ratio=f"{data['ratio']:.2f}",
        target=data["target_text"],
        met="yes" if data["met"] else "**no**",
    )
    return row, out + err


def delivery_rows(quick: bool) -> tuple[list[Row], str, bool]:
    """Run bench_delivery.py and read what it prints (its own format; nothing here assumes more than a line or two)."""
    code, out, err = run(DELIVERY, ["--quick"] if quick else [])
    text = out + err
    if code != 0:
        return [], f"{text}\n{DELIVERY} failed (exit code {code})", False
    rows: list[Row] = []
    throughput = re.search(r"Maxim up:\s*([\d,]+)\s*spans/s\s*\(([\d,]+) spans", out)
    if throughput:
        rate = int(throughput.group(1).replace(",", ""))
        ceiling = re.search(r"the SDK alone.*?:\s*([\d,]+)\s*spans/s", out)
        ceiling_rate = int(ceiling.group(1).replace(",", "")) if ceiling else 0
        rows.append(
            Row(
                benchmark=f"4. end to end into a local Maxim API ({throughput.group(2)} spans)",
                ours=f"{rate:,} spans/s, every record acknowledged",
                baseline=f"{ceiling.group(1)} spans/s (the SDK alone, no-op exporter)" if ceiling else "-",
                # Of the SDK alone in the same run: steadier than spans/s on a machine whose speed varies.
                ratio=f"{rate / ceiling_rate:.2f} of the SDK alone" if ceiling_rate else "-",
                target=f">= {DELIVERY_TARGET_SPANS_PER_SECOND:,} spans/s",
                met="yes" if rate >= DELIVERY_TARGET_SPANS_PER_SECOND else "**no**",
            )
        )
    flowing = re.search(r"memory, Maxim up:\s*([\d,]+)\s*spans/s\s*\(([\d,]+) spans", out)
    memory_up = re.search(r"memory while up:\s*(.*)", out)
    if flowing and memory_up:
        rows.append(
            Row(
                benchmark=f"4. memory end to end, Maxim up, over {flowing.group(2)} spans",
                ours=f"{memory_up.group(1).strip()} ({flowing.group(1)} spans/s, every record acknowledged)",
                baseline="-",
                ratio="-",
                target="flat",
                met=_flat(memory_up.group(1)),
            )
        )
    memory = re.search(r"memory while down:\s*(.*)", out)
    down = re.search(r"Maxim down, spooling:\s*[\d,]+\s*spans/s\s*\(([\d,]+) spans", out)
    if memory:
        spans = f" over {down.group(1)} spans" if down else ""
        rows.append(
            Row(
                benchmark=f"4. memory while Maxim is down{spans}",
                ours=memory.group(1).strip().rstrip(";").replace("|", "/"),
                baseline="-",
                ratio="-",
                target="flat",
                met=_flat(memory.group(1)),
            )
        )
    if not rows:
        rows.append(Row("4. delivery", "see bench_delivery.py output", "-", "-", "-", "?"))
    return rows, text, True


def _flat(text: str) -> str:
    """Judge "flat" from an RSS series (``RSS at 0/25/50/75/100 %: 35, 58, 64, 64, 65 MiB``) if one is printed.

    Flat: over the second half of the spans, RSS grows by at most 5 MiB or 5 %, whichever is larger.
    (The first half includes the allocator's and the spool's warm-up; what must not happen is growth
    that goes on with the number of spans.)
    """
    series = re.search(r"RSS at ([\d/]+) %:\s*([\d., ]+)\s*MiB", text)
    if series is None:
        return "see bench_delivery.py output"
    points = [int(p) for p in series.group(1).split("/")]
    values = [float(v) for v in series.group(2).replace(" ", "").split(",") if v]
    if len(values) != len(points) or 50 not in points:
        return "see bench_delivery.py output"
    middle = values[points.index(50)]
    growth = values[-1] - middle
    flat = growth <= max(5.0, 0.05 * middle)
    verdict = f"{'yes' if flat else '**no**'} ({growth:+.0f} MiB over the second half"
    # Python's allocated blocks over the same half: the objects held, without the C allocator's plateau.
    blocks = re.search(r"allocated blocks \(thousands\) at [\d/]+ %:\s*([\d, ]+)", text)
    counts = [float(v) for v in blocks.group(1).replace(" ", "").split(",") if v] if blocks else []
    if len(counts) == len(points) and counts[points.index(50)]:
        verdict += f"; Python's allocated blocks {100 * (counts[-1] / counts[points.index(50)] - 1):+.0f} %"
    return verdict + ")"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()} {platform.machine()},"
        f" {platform.python_implementation()} {platform.python_version()}"
    )


def code_state() -> str:
    """The commit measured, and whether otel_maxim/ had uncommitted changes (with a short hash of them)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", "otel_maxim"], capture_output=True, cwd=ROOT, check=True
        ).stdout
        untracked = subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", "otel_maxim"],
            capture_output=True,
            cwd=ROOT,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    if not diff and not untracked:
        return f"commit {head}"
    digest = hashlib.sha256(diff + untracked).hexdigest()[:10]
    return f"commit {head} + uncommitted changes to otel_maxim/ (diff {digest})"


def versions() -> str:
    """The installed release of each of :data:`MEASURED_PACKAGES`, and protobuf's backend."""
    found = []
    for name in MEASURED_PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    try:
        from google.protobuf.internal import api_implementation  # noqa: PLC0415

        found.append(f"protobuf backend {api_implementation.Type()}")
    except ImportError:
        pass
    return ", ".join(found)


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | ours | baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.benchmark} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} | {r.met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every otel_maxim benchmark and print a Markdown table.")
    parser.add_argument("--quick", action="store_true", help="smoke runs with tiny sizes")
    parser.add_argument("--skip-delivery", action="store_true", help=f"do not run {DELIVERY}")
    args = parser.parse_args(argv)

    rows: list[Row] = []
    failed = False
    for script, extra in RATIO_BENCHMARKS:
        print(f"## {' '.join([script, *extra])}", flush=True)
        row, output = ratio_row(script, args.quick, extra)
        print(output.rstrip(), flush=True)
        print(flush=True)
        if row is None:
            failed = True
        else:
            rows.append(row)
    if not args.skip_delivery and (HERE / DELIVERY).exists():
        print(f"## {DELIVERY}", flush=True)
        delivery, output, ok = delivery_rows(args.quick)
        print(output.rstrip(), flush=True)
        print(flush=True)
        rows.extend(delivery)
        failed = failed or not ok

    print(f"Machine: {machine()}" + (" (quick smoke run: sizes too small to mean anything)" if args.quick else ""))
    print(f"Code: {code_state()}")
    print(f"Packages: {versions()}")
    print()
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
