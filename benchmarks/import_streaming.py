"""Import throughput and memory: does `tutelage import` stream, whatever the file size?

Generates TRL preference files of growing size (synthetic pairs of ~1 KB), imports each
into a fresh SQLite store in a fresh process, and prints lines per second and the peak
resident memory of that process. Streaming shows as a peak that stays flat while the
file grows. For the real file, it also times the HH-RLHF import from ../shared if present.

    .venv/bin/python benchmarks/import_streaming.py [--sizes 10000 50000 200000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HH = Path(__file__).resolve().parents[2] / "shared/data/hh-rlhf/helpful-base.test.jsonl.gz"

MEASURE = """
import resource, sys, time
from pathlib import Path
from tutelage.interchange import import_file
from tutelage.store import open_store
store = open_store(sys.argv[1])
started = time.perf_counter()
report = import_file(store, path=Path(sys.argv[2]), project="bench")
seconds = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(report.lines_read, report.records_stored, seconds, peak_mb)
"""


def make_file(path: Path, pairs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
        for i in range(pairs):
            prompt = f"question {i}: " + " ".join(rng.choices(words, k=40))
            chosen = " ".join(rng.choices(words, k=60))
            rejected = " ".join(rng.choices(words, k=60))
            handle.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}))
            handle.write("\n")


def measure(path: Path, folder: Path) -> tuple[int, int, float, float]:
    db = folder / f"{path.stem}.db"
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, f"sqlite:///{db}", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines, stored, seconds, peak = out.stdout.split()
    return int(lines), int(stored), float(seconds), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(
            f"{'file':<28}{'MB (raw)':>10}{'lines':>10}{'seconds':>9}{'lines/s':>9}{'peak MB':>9}"
        )
        rows = []
        if HH.is_file():
            rows.append((HH.name, HH, 0.0))
        for size in args.sizes:
            path = folder / f"synthetic-{size}.jsonl.gz"
            make_file(path, size)
            with gzip.open(path, "rb") as handle:
                raw_mb = sum(len(block) for block in iter(lambda: handle.read(1 << 20), b""))
            rows.append((path.name, path, raw_mb / 2**20))
        peaks = []
        for name, path, raw_mb in rows:
            lines, _, seconds, peak = measure(path, folder)
            peaks.append((raw_mb, peak))
            print(f"{name:<28}{raw_mb:>10.0f}{lines:>10,}{seconds:>9.1f}"
                  f"{lines / seconds:>9,.0f}{peak:>9.0f}")  # fmt: skip
        synthetic = [p for p in peaks if p[0] > 0]
        if len(synthetic) >= 2:
            (small_mb, small_peak), (big_mb, big_peak) = synthetic[0], synthetic[-1]
            print(
                f"file grew {big_mb / small_mb:.1f}x, peak memory grew {big_peak / small_peak:.2f}x"
            )


if __name__ == "__main__":
    main()
