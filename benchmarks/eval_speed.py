"""Reward-model evaluation: what temperature scaling buys, and what the full audit costs.

Pairs: the HH-RLHF helpful-base test file from `../shared`. The model: a MiniLM reward
model trained by `tutelage train reward FILE --out runs/rm --holdout 0.2` (its held-out
file, `runs/rm/heldout.jsonl`, holds prompts it never saw; trained here first when
`--model` does not exist yet).

- Calibration: the held-out pairs split again by prompt (seed 0), half to fit the
  temperature on and half to measure on; expected calibration error (10 equal-width
  bins) before and after, on the measuring half. Target: at least halved. Beside it,
  the ECE a perfectly calibrated model shows on as many pairs (its noise floor).
- Cost of the full audit (accuracy, interval, calibration, length, the six
  perturbations): on `--pairs` pairs (the file's 2,354 pairs repeated to that many;
  every one is scored anew, nothing is cached), wall time of `audit_reward`.
  Target: 10,000 pairs in under 10 minutes on this machine.

    .venv/bin/python benchmarks/eval_speed.py [--model runs/rm] [--pairs 10000]
        [--max-length 256] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torchmetrics.functional.classification import binary_calibration_error

from tutelage.evaluation import PairSet, audit_reward, audit_scores, fit_on_split
from tutelage.training.data import TrainingPair, load_pairs, split_by_prompt
from tutelage.training.scoring import RewardScorer

HH = Path(__file__).resolve().parents[2] / "shared/data/hh-rlhf/helpful-base.test.jsonl.gz"
TARGET_ECE_RATIO = 0.5
TARGET_SECONDS = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("runs/rm"))
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    console = Console()

    if not args.model.exists():
        console.print(f"training {args.model} first (a few minutes)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tutelage",
                "train",
                "reward",
                str(HH),
                "--out",
                str(args.model),
                "--holdout",
                "0.2",
            ],
            check=True,
        )
    held_out = load_pairs(args.model / "heldout.jsonl").pairs

    started = time.perf_counter()
    member_scores = RewardScorer(args.model, max_length=args.max_length).score_pairs(held_out)
    plain = audit_scores(PairSet("held-out", held_out), member_scores)
    margins = [
        sum(m[i][0] - m[i][1] for m in member_scores) / len(member_scores)
        for i in range(len(held_out))
    ]
    fit = fit_on_split("held-out", held_out, margins)
    calibration_seconds = time.perf_counter() - started
    floor = _noise_floor(held_out, margins, fit.temperature)

    everything = load_pairs(HH).pairs
    repeated = [everything[i % len(everything)] for i in range(args.pairs)]
    started = time.perf_counter()
    (full,) = audit_reward(args.model, [PairSet("repeated", repeated)], max_length=args.max_length)
    audit_seconds = time.perf_counter() - started

    table = Table(title=f"Reward-model evaluation ({platform.processor() or platform.machine()})")
    for column in ("measure", "figure", "target", "met"):
        table.add_column(column)
    ratio = fit.ece_after / fit.ece_before
    table.add_row(
        "ECE on held-out prompts, before -> after temperature",
        f"{fit.ece_before:.4f} -> {fit.ece_after:.4f} (x{ratio:.2f}; T = {fit.temperature:.3f}; "
        f"fitted on {fit.fitted_pairs}, measured on {fit.measured_pairs} pairs)",
        f"x{TARGET_ECE_RATIO} or lower",
        "yes" if ratio <= TARGET_ECE_RATIO else "NO",
    )
    table.add_row(
        "ECE a perfectly calibrated model shows on as many pairs",
        f"median {floor[0]:.4f}, 90th percentile {floor[1]:.4f} (300 draws)",
        "",
        "",
    )
    table.add_row(
        "held-out accuracy / length baseline",
        f"{plain.evaluation.accuracy:.3f} / {plain.evaluation.length_baseline_accuracy:.3f}",
        "",
        "",
    )
    table.add_row(
        f"full audit of {args.pairs:,} pairs (6 perturbations)",
        f"{audit_seconds:.0f} s ({args.pairs / audit_seconds:.1f} pairs/s)",
        f"under {TARGET_SECONDS:.0f} s",
        "yes" if audit_seconds < TARGET_SECONDS else "NO",
    )
    flips = ", ".join(
        f"{f.name} {f.flip_rate:.1%}" for f in full.robustness if f.flip_rate is not None
    )
    table.add_row("flip rates on those pairs", flips, "", "")
    console.print(table)
    figures = {
        "ece_before": fit.ece_before,
        "ece_after": fit.ece_after,
        "temperature": fit.temperature,
        "ece_noise_floor": {"median": floor[0], "p90": floor[1]},
        "calibration_seconds": calibration_seconds,
        "audit_pairs": args.pairs,
        "audit_seconds": audit_seconds,
        "audit": full.summary(),
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def _noise_floor(
    pairs: list[TrainingPair], margins: list[float], temperature: float
) -> tuple[float, float]:
    """Return the median and 90th percentile of the ECE that a perfectly calibrated model
    (its outcomes drawn from its own probabilities) shows on the measuring half: below
    it, a lower ECE cannot be told apart from noise."""
    margin_of = {id(p): m for p, m in zip(pairs, margins, strict=True)}
    _, measure = split_by_prompt(list(pairs), fraction=0.5, seed=0)
    probabilities = [1 / (1 + math.exp(-margin_of[id(p)] / temperature)) for p in measure]
    rng = random.Random(0)
    found = []
    for _ in range(300):
        won = [rng.random() < p for p in probabilities]
        both = probabilities + [1 - p for p in probabilities]
        outcomes = [int(w) for w in won] + [int(not w) for w in won]
        found.append(
            float(
                binary_calibration_error(
                    torch.tensor(both, dtype=torch.float64), torch.tensor(outcomes), n_bins=10
                )
            )
        )
    found.sort()
    return found[150], found[270]


if __name__ == "__main__":
    main()
