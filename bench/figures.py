"""The README's table of benchmark figures, made from the benchmarks' own JSON lines.

    python -m bench.figures                      # rewrite the README table from bench/results.jsonl
    python -m bench.figures --run quick          # run every benchmark with --quick first, then rewrite
    python -m bench.figures --run full next_account portal   # run these at their full size, then rewrite

Every benchmark ends with one JSON line (DESIGN §9). `--run` starts each benchmark as its own process, takes
that last line, adds the machine (CPU model, cores, memory), the date, the git commit and the command line, and
appends it to `bench/results.jsonl`. The table between the markers `<!-- figures:start -->` and
`<!-- figures:end -->` in README.md is then rewritten from the latest line of each (benchmark, database, size):
the product's figure, the baseline, the ratio, the floor where the benchmark measures one, and the goal beside
it with whether it is met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.jsonl"
README = ROOT / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


@dataclass(frozen=True)
class Goal:
    text: str
    met: Callable[[dict[str, Any]], bool | None]


def _at_least(key: str, value: float) -> Callable[[dict[str, Any]], bool | None]:
    return lambda r: None if r.get(key) is None else r[key] >= value


def _below(key: str, value: float) -> Callable[[dict[str, Any]], bool | None]:
    return lambda r: None if r.get(key) is None else r[key] < value


def _absent_or_below(key: str, value: float) -> Callable[[dict[str, Any]], bool | None]:
    return lambda r: True if r.get(key) is None else r[key] < value


def _all(*checks: Callable[[dict[str, Any]], bool | None]) -> Callable[[dict[str, Any]], bool | None]:
    def met(r: dict[str, Any]) -> bool | None:
        results = [c(r) for c in checks]
        return None if None in results else all(results)

    return met


# the goals of the issues that asked for each benchmark
GOALS: dict[str, Goal] = {
    "import_placements": Goal("ratio ≥ 0.30, peak RSS < 500 MB", _at_least("ratio", 0.30)),
    "post_payments": Goal("ratio ≥ 0.30; batch ≥ 5x single", _at_least("ratio", 0.30)),
    "aging": Goal("ratio ≥ 0.33 at 6M rows; KPI page p95 < 1 s", _at_least("ratio", 0.33)),
    "reports": Goal("a PDF page < 2x the calibration page (ratio > 0.5)", _at_least("ratio", 0.5)),
    "worklist_rebuild": Goal("full ≤ 5x the scan, nightly ≤ 3x", _at_least("ratio", 0.20)),
    "next_account": Goal(
        "ratio ≥ 0.25, p95 < 150 ms flat out, no errors",
        _all(_at_least("ratio", 0.25), _below("p95_ms", 150), _below("errors", 1)),
    ),
    "sla_sweep": Goal("ratio ≥ 0.25", _at_least("ratio", 0.25)),
    "portal": Goal("p95 < 300 ms at 50 req/s, no errors", _all(_below("p95_ms", 300), _below("errors", 1))),
    "api_batch": Goal("ratio ≥ 0.5", _at_least("ratio", 0.5)),
    "pages": Goal(
        "every page type p95 < 300 ms with 5 users, no errors; none while a 100k-line placement file and a payment "
        "file import (SQLite)",
        _all(_below("p95_ms", 300), _below("errors", 1), _absent_or_below("during_imports_errors", 1)),
    ),
    "smtp_send": Goal("≥ 200 messages/s with one worker", _at_least("value", 200)),
    "dunning": Goal("ratio ≥ 0.10, peak RSS ≤ 500 MB", _at_least("ratio", 0.10)),
    "remittance": Goal("ratio ≥ 0.05, statements equal the books", _at_least("ratio", 0.05)),
    "forecast": Goal("ratio ≥ 0.05, peak RSS ≤ 1 GB", _at_least("ratio", 0.05)),
}
BENCHES = [
    "import_placements",
    "post_payments",
    "aging",
    "reports",
    "worklist_rebuild",
    "next_account",
    "sla_sweep",
    "portal",
    "api_batch",
    "pages",
    "smtp_send",
    "dunning",
    "remittance",
    "forecast",
]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo") as fh:
            kib = int(next(ln for ln in fh if ln.startswith("MemTotal")).split()[1])
            memory_gib = round(kib / 1024 / 1024)
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib, "os": platform.platform()}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)  # noqa: S607
        return out.stdout.strip()
    except OSError:
        return ""


def run(name: str, size: str, extra: list[str]) -> dict[str, Any] | None:
    """Run one benchmark; append its JSON line, with where and when, to bench/results.jsonl."""
    args = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if size == "quick" else []), *extra]
    print("$", " ".join(args[1:]), flush=True)
    load_before = round(os.getloadavg()[0], 2)
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    last = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if proc.returncode != 0 or last is None:
        print(f"  {name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return None
    record = json.loads(last)
    record["_run"] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_before": load_before,  # 1-minute load average when it started: other work on the machine
        "commit": _commit(),
        "command": " ".join(args[2:]),
        "machine": machine(),
    }
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(f"  {name}: {record.get('value')} {record.get('unit', '')} (ratio {record.get('ratio')})")
    return record


def latest(path: Path = RESULTS) -> list[dict[str, Any]]:
    """The latest record of each (benchmark, database, size), in the benchmarks' order."""
    if not path.exists():
        return []
    by_key: dict[tuple[str, str, Any], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_key[(record["bench"], record.get("db", "postgresql"), record.get("size"))] = record
    order = {name: i for i, name in enumerate(BENCHES)}
    return sorted(by_key.values(), key=lambda r: (order.get(r["bench"], 99), r.get("db", ""), r.get("size") or 0))


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| Benchmark | Size | Product | Baseline | Ratio | Floor ratio | Goal | Met | Measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    machines = {}
    for r in records:
        goal = GOALS.get(r["bench"])
        met = goal.met(r) if goal else None
        extra = [
            f"p95 {_number(r['p95_ms'])} ms" if "p95_ms" in r else "",
            f"{r['errors']} errors" if "errors" in r else "",
        ]
        if "peak_rss_mb" in r:
            extra.append(f"peak RSS {_number(r['peak_rss_mb'])} MB")
        product = f"{_number(r.get('value'))} {r.get('unit', '')}".strip()
        detail = ", ".join(e for e in extra if e)
        run_info = r.get("_run", {})
        m = run_info.get("machine", {})
        machine_text = f"{m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB, {m.get('cpu', '?')}"
        machines[machine_text] = True
        lines.append(
            "| `{}` {} | {} | {}{} | {} | {} | {} | {} | {} | {} |".format(
                r["bench"],
                r.get("db", "postgresql"),
                _number(r.get("size")),
                product,
                f" ({detail})" if detail else "",
                _number(r.get("baseline")),
                _number(r.get("ratio")),
                _number(r.get("floor_ratio")),
                goal.text if goal else "",
                {True: "✓", False: "✗", None: ""}[met],
                f"{run_info.get('at', '')[:10]} `{run_info.get('command', '')}` @ {run_info.get('commit', '')},"
                f" load {run_info.get('load_before', '?')}",
            )
        )
    lines.append("")
    lines.append(
        "Machines: " + "; ".join(machines) + ". *load*: the machine's 1-minute load average when the run started."
    )
    return "\n".join(lines)


def rewrite_readme(text: str) -> None:
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=("quick", "full"), help="run the benchmarks first")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), help="pass --db to the benchmarks run")
    args = parser.parse_args()
    if args.run:
        for name in args.names or BENCHES:
            run(name, args.run, ["--db", args.db] if args.db else [])
    records = latest()
    if not records:
        raise SystemExit("no recorded runs: run with --run quick (or full) first")
    rewrite_readme(table(records))
    print(f"README.md: figures of {len(records)} runs")


if __name__ == "__main__":
    main()
