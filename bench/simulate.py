"""The simulator's memory as the bank grows: peak resident memory of `tierflow simulate` to a
JSON-lines file, for populations side by side in one run.

make bench-simulate            # 1,000 / 100,000 / 1,000,000 customers, 10 events each a year
BENCH_SIM_SIZES=1000,20000 make bench-simulate
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [int(n) for n in os.environ.get("BENCH_SIM_SIZES", "1000,100000,1000000").split(",")]
EVENTS_PER_CUSTOMER = 10
END = "2026-11-01T00:00:00+00:00"


def measure(customers: int, out: Path) -> tuple[float, int, int]:
    """(seconds, peak resident KiB, lines written) of one simulation run as its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "tierflow.cli", "simulate", "--customers", str(customers),
         "--events-per-customer", str(EVENTS_PER_CUSTOMER), "--end", END, "--out", str(out)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"simulate failed for {customers} customers")
    seconds = time.perf_counter() - started
    with out.open("rb") as lines:
        count = sum(1 for _ in lines)
    return seconds, usage.ru_maxrss, count


def main() -> None:
    header = ("customers", "records", "seconds", "records/s", "peak RSS", "vs first")
    print("{:>10} {:>12} {:>9} {:>10} {:>10} {:>9}".format(*header))
    baseline = 0
    with tempfile.TemporaryDirectory(prefix="tierflow-sim-") as scratch:
        for customers in SIZES:
            out = Path(scratch) / f"bank-{customers}.jsonl"
            seconds, peak_kib, count = measure(customers, out)
            out.unlink()
            baseline = baseline or peak_kib
            print(
                f"{customers:>10,} {count:>12,} {seconds:>9.1f} {count / seconds:>10,.0f} "
                f"{peak_kib / 1024:>8.1f}MB {peak_kib / baseline:>8.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
