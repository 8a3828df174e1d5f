"""Quality: does consensus find the truth, detection the bad experts, and does it scale?

(a) The simulation of `tutelage quality simulate` on the HH-RLHF helpful-base test file
    (30 experts, overlap 3, 20% adversarial, 10% careless by default), per seed:
    consensus accuracy of majority vote and Dawid-Skene against the human label, and
    precision and recall of flagging the bad experts, against the issue's targets.
(b) Scale: 1,000,000 comparison judgments (200,000 items x 5) written into a real
    SQLite store by the simulation's bulk writer (not timed against the target), then,
    in a fresh process, load + agreement + consensus + reliability (and detection) timed
    per phase, with that process's peak resident memory, against the 60 s target.

    .venv/bin/python benchmarks/quality.py [--seeds 0 1] [--judgments 1000000]
        [--skip-simulation] [--skip-scale] [--keep PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tutelage.quality.simulate import SimulationConfig, read_pairs, run_simulation, write_simulation
from tutelage.records import Completion, Message, PreferencePair, Prompt
from tutelage.store import open_store

HH = Path(__file__).resolve().parents[2] / "shared/data/hh-rlhf/helpful-base.test.jsonl.gz"
TARGET_ACCURACY = 0.95
TARGET_DETECTION = 0.9
TARGET_SECONDS = 60.0
console = Console(stderr=True)

MEASURE = """
import json, resource, sys, time
from tutelage.quality.persist import analyse_project
from tutelage.store import open_store
store = open_store(sys.argv[1])
marks = [("opening the project", time.perf_counter())]
quality = analyse_project(
    store, project="scale", save=False,
    progress=lambda message: marks.append((message, time.perf_counter())),
)
marks.append(("end", time.perf_counter()))
from sqlalchemy import select
from tutelage.quality.load import expert_worker
from tutelage.store.tables import UserRow
with store.session() as session:  # the simulation keeps each expert's kind as display name
    kinds = {expert_worker(uid): kind for uid, kind in
             session.execute(select(UserRow.id, UserRow.display_name))}
bad = {w for w, kind in kinds.items() if kind not in ("good", "")}
flagged = {f.worker for f in quality.analysis.flags}
started = time.perf_counter()
with store.session() as session:
    from tutelage.quality.persist import save_consensus
    stored = save_consensus(session, project_id=quality.judgments.project_id,
                            consensus=quality.analysis.consensus)
print(json.dumps({
    "marks": marks, "seconds": quality.seconds, "stored": stored,
    "store_seconds": time.perf_counter() - started,
    "judgments": len(quality.judgments.comparisons),
    "items": int(quality.judgments.comparisons["item"].nunique()),
    "experts": len(quality.analysis.experts), "flags": len(quality.analysis.flags),
    "precision": len(bad & flagged) / len(flagged) if flagged else 1.0,
    "recall": len(bad & flagged) / len(bad) if bad else 1.0, "bad": len(bad),
    "flagged": len(flagged),
    "notes": {k: s.note for k, s in quality.analysis.agreement.overall.items()},
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# The simulation's default (paid experts who passed a qualification), then weaker good
# experts, with which no aggregation of three judgments an item reaches 95% (see oracle).
GOOD_ACCURACY = ((0.85, 0.98), (0.75, 0.95))


def simulation(pairs_path: Path, seeds: list[int], experts: int, overlap: int) -> None:
    pairs = read_pairs(pairs_path)
    print(
        f"(a) simulation: {len(pairs):,} pairs of {pairs_path.name}, {experts} experts, "
        f"overlap {overlap}, 20% adversarial, 10% careless"
    )
    header = f"{'good accuracy':>14}{'seed':>5}{'majority':>10}{'DS':>8}{'oracle':>8}"
    header += f"{'precision':>11}{'recall':>8}{'seconds':>9}"
    print(header + f"  verdict (DS >= {TARGET_ACCURACY}, DS > majority, P/R >= 0.9)")
    for (low, high), seed in itertools.product(GOOD_ACCURACY, seeds):
        config = SimulationConfig(
            experts=experts,
            overlap=overlap,
            adversarial=0.2,
            good_accuracy=(low, high),
            seed=seed,
        )
        with tempfile.TemporaryDirectory() as folder:
            store = open_store(f"sqlite:///{Path(folder) / 'simulation.db'}")
            started = time.perf_counter()
            result = run_simulation(store, pairs=pairs, config=config)
            seconds = time.perf_counter() - started
            store.close()
        accuracy, detection = result.consensus_accuracy, result.detection
        checks = [
            accuracy["dawid_skene"] >= TARGET_ACCURACY,
            accuracy["dawid_skene"] > accuracy["majority"],
            detection["precision"] >= TARGET_DETECTION,
            detection["recall"] >= TARGET_DETECTION,
        ]
        print(
            f"{f'{low:.2f}-{high:.2f}':>14}"
            f"{seed:>5}{accuracy['majority']:>10.3f}{accuracy['dawid_skene']:>8.3f}"
            f"{accuracy['oracle']:>8.3f}{detection['precision']:>11.3f}{detection['recall']:>8.3f}"
            f"{seconds:>9.1f}  " + " ".join(_verdict(c) for c in checks)
        )
    print(
        "  oracle: the Bayes vote that knows every expert's real error rates, a ceiling "
        "for any aggregation of these judgments"
    )


def synthetic_pairs(count: int) -> list[PreferencePair]:
    return [
        PreferencePair(
            prompt=Prompt(messages=(Message(role="user", content=f"Question {i}: why?"),)),
            chosen=Completion(text=f"A careful answer to question {i}."),
            rejected=Completion(text=f"A careless answer to question {i}."),
        )
        for i in range(count)
    ]


def scale(judgments: int, per_item: int, experts: int, keep: Path | None) -> None:
    items = judgments // per_item
    with tempfile.TemporaryDirectory() as folder:
        path = keep or Path(folder) / "scale.db"
        url = f"sqlite:///{path}"
        if not path.exists():
            started = time.perf_counter()
            store = open_store(url)
            pairs = synthetic_pairs(items)
            config = SimulationConfig(experts=experts, overlap=per_item, gold_items=0, seed=0)
            with _progress() as progress, store.session() as session:
                task = progress.add_task("writing judgments", total=items)
                write_simulation(
                    session,
                    name="scale",
                    pairs=pairs,
                    config=config,
                    progress=lambda _phase, done, _total: progress.update(task, completed=done),
                )
            store.close()
            console.print(f"set-up: {time.perf_counter() - started:.0f} s to write the store")
        with _progress() as progress:
            progress.add_task("loading and analysing in a fresh process", total=None)
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, url], capture_output=True, text=True, check=True
            )
    figures = json.loads(out.stdout)
    marks = figures["marks"]
    total = marks[-1][1] - marks[0][1]
    print(
        f"(b) scale: {figures['judgments']:,} comparison judgments on {figures['items']:,} "
        f"items by {figures['experts']} experts, SQLite"
    )
    for (name, at), (_, until) in itertools.pairwise(marks):
        print(f"  {name:<28}{until - at:>8.1f} s")
    print(
        f"  {'total':<28}{total:>8.1f} s   target < {TARGET_SECONDS:.0f} s: "
        f"{_verdict(total < TARGET_SECONDS)}"
    )
    print(f"  peak resident memory of that process: {figures['peak_mb']:,.0f} MB")
    print(
        f"  detection at this scale: {figures['flagged']} experts flagged "
        f"({figures['flags']} flags), {figures['bad']} bad, "
        f"precision {figures['precision']:.3f}, recall {figures['recall']:.3f}"
    )
    print(
        f"  (then storing {figures['stored']:,} consensus labels: "
        f"{figures['store_seconds']:.1f} s, not in the total)"
    )
    for name, note in figures["notes"].items():
        if note:
            print(f"  {name}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=Path, default=HH)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--experts", type=int, default=30)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--per-item", type=int, default=5)
    parser.add_argument("--scale-experts", type=int, default=100)
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--keep", type=Path, help="SQLite file for the scale store, reused when it exists"
    )
    args = parser.parse_args()
    if not args.skip_simulation:
        if not args.pairs.is_file():
            sys.exit(f"{args.pairs} is not here (it comes with ../shared); pass --pairs FILE")
        simulation(args.pairs, args.seeds, args.experts, args.overlap)
    if not args.skip_scale:
        scale(args.judgments, args.per_item, args.scale_experts, args.keep)


if __name__ == "__main__":
    main()
