"""Peak memory of reading hostile and large uploads, against reading a plain file of the same kind, in the same run.

    python -m bench.upload_bombs [--quick]

Each file is read in a fresh Python process exactly as an import job reads it (`clients.imports.read_rows`, every
row consumed; refused files stop at the refusal), with the default limits (provider.core.uploads), and the
process's peak RSS (VmHWM; ru_maxrss would carry the parent's over exec) is reported. Files are built
on the fly (tests/clients/upload_bombs.py):

  baseline        a plain 100,000-row workbook (--quick 20,000): what a legitimate big upload costs
  declared-huge   a 5 KB sheet declaring 16,384 x 1,048,576 cells                              (refused)
  at-cell-limit   a sheet declaring 305 x 16,384 cells, just under UPLOAD_MAX_CELLS, almost empty  (read)
  padded-rows     rows with an empty cell in the last column, filled in by the reader         (refused)
  ratio           100 MB of zeros in 100 KB                                                    (refused)
  strings-15mb    a 15 MB shared-strings part, just under the 16 MB part limit                 (read)
  huge-cell       one cell of 40 MB of text (--quick 10 MB) in a sheet, within MAX_UPLOAD_MB  (refused)

Goal: every file within MAX_UPLOAD_MB peaks under 300 MB. value = worst peak; ratio = baseline peak / worst peak.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.clients import upload_bombs as ub

READER = """
import re, sys, time
from clients.imports import FileRejected, read_rows
content = open(sys.argv[1], "rb").read()
started = time.perf_counter()
try:
    header, rows = read_rows("upload.xlsx", content)
    n = sum(1 for _ in rows)
    outcome = f"read {n} rows"
except FileRejected as exc:
    outcome = "refused: " + str(exc)[:70]
took = time.perf_counter() - started
peak = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) // 1024
print(peak, round(took, 2), outcome, sep="|")
"""


def _huge_cell(megabytes: int) -> bytes:
    text = base64.b64encode(os.urandom(megabytes * 1024 * 1024 * 3 // 4)).decode()
    row = f'<row r="2"><c r="A2" t="inlineStr"><is><t>{text}</t></is></c></row>'
    return ub._rebuilt({ub.SHEET: ub._sheet(None, ub._header_row() + row)})


def _at_cell_limit() -> bytes:
    return ub._rebuilt({ub.SHEET: ub._sheet("A1:XFD305", ub._header_row())})


def _strings(megabytes: int) -> Callable[[], bytes]:
    return lambda: ub.big_shared_strings(megabytes)


def measure(path: Path) -> tuple[int, float, str]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", READER, str(path)], capture_output=True, text=True, check=True, cwd=Path.cwd()
    ).stdout.strip()
    rss, took, outcome = out.split("|", 2)
    return int(rss), float(took), outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = 20_000 if args.quick else 100_000
    cases: dict[str, Callable[[], bytes]] = {
        "baseline": lambda: ub.plain_xlsx(rows),
        "declared-huge": ub.declared_huge_sheet,
        "at-cell-limit": _at_cell_limit,
        "padded-rows": ub.padded_rows_sheet,
        "ratio": lambda: ub.ratio_bomb(100),
        "strings-15mb": _strings(15),
        "huge-cell": lambda: _huge_cell(10 if args.quick else 40),
    }
    results = {}
    print(f"{'file':<15} {'size':>12} {'peak RSS':>10} {'time':>7}  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in cases.items():
            path = Path(tmp) / f"{name}.xlsx"
            path.write_bytes(build())
            started = time.perf_counter()
            rss, took, outcome = measure(path)
            results[name] = rss
            size = path.stat().st_size
            print(
                f"{name:<15} {size:>12,} {rss:>7} MB {took:>6.2f}s  {outcome}  ({time.perf_counter() - started:.1f}s)"
            )
            path.unlink()
    worst = max(v for k, v in results.items() if k != "baseline")
    print(
        json.dumps(
            {
                "bench": "upload_bombs",
                "size": rows,
                "value": worst,
                "unit": "MB peak RSS (worst hostile file)",
                "baseline": results["baseline"],
                "ratio": round(results["baseline"] / worst, 3),
                "peak_rss_mb": worst,
                "per_file_mb": results,
            }
        )
    )


if __name__ == "__main__":
    main()
