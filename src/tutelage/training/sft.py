"""Supervised fine-tuning of a causal LM on demonstrations (expert rewrites and answers).

One config, one train function, top to bottom. The loss is the mean negative
log-likelihood of the answer tokens only: the prompt is context, not a target.
Examples are packed several to a row (up to `max_length` positions) with attention
that cannot cross from one example to another (see `sequences`), so no compute goes
to padding.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tutelage.training.data import Demonstration, DemonstrationData
from tutelage.training.dpo import default_policy, load_causal_lm
from tutelage.training.run import (
    CHECKPOINT,
    TrainingRun,
    apply_lora,
    batch_schedule,
    check_common,
    checkpoint_due,
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
    restore_rng,
    run_metrics,
    save_checkpoint,
    save_model,
    steps_per_epoch,
    write_config,
    write_run,
)
from tutelage.training.sequences import (
    AnswerScorer,
    Group,
    answer_logprobs,
    encode_answer_ids,
    encode_prompt,
    fit_group,
    group_rows,
    pack_groups,
)

__all__ = ["SFTConfig", "train_sft"]


@dataclass
class SFTConfig:
    """Everything needed to rerun an SFT training; saved as `config.toml`."""

    out: Path
    base: str = field(default_factory=default_policy)
    max_steps: int | None = None
    epochs: int = 1
    batch_size: int = 8
    max_length: int = 512
    lr: float = 1e-5
    # fraction of the steps over which the learning rate climbs to `lr`
    warmup: float = 0.0
    seed: int = 0
    gradient_checkpointing: bool = False
    precision: str = "auto"
    lora: bool = False
    lora_rank: int = 16
    checkpoint_every: int = 200
    dropout: bool = False
    pack: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        check_common(self)


def _groups(tokenizer: Any, examples: list[Demonstration], max_length: int) -> list[Group]:
    return [
        fit_group(
            encode_prompt(tokenizer, e.messages, e.prompt),
            [encode_answer_ids(tokenizer, e.answer)],
            max_length,
        )
        for e in examples
    ]


def train_sft(
    config: SFTConfig, data: DemonstrationData, *, progress: bool = True, resume: bool = False
) -> TrainingRun:
    """Fine-tune the model at `config.base` on `data`'s answers; write the run to
    `config.out`. With `resume`, continue from the checkpoint in `config.out`."""
    if not data.examples:
        raise ValueError(f"no demonstrations to train on in {data.source}")
    settings = config_settings(config)
    state = open_run(config.out, resume, settings, data)
    started_at = time.time()
    torch.manual_seed(config.seed)
    accelerator = make_accelerator(config.precision)
    if accelerator.is_main_process:
        write_config(config.out, method="sft", settings=settings, data=data_record(data))
    tokenizer, model = load_causal_lm(config.base)
    pad = int(tokenizer.pad_token_id)
    groups = _groups(tokenizer, data.examples, config.max_length)
    if config.lora:
        model = apply_lora(model, config.lora_rank, "CAUSAL_LM")
    if not config.dropout:
        disable_dropout(model)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if config.lora:
            model.enable_input_require_grads()
    if state is not None:
        model.load_state_dict(state["model"])
    scorer = AnswerScorer(model)
    optimizer = make_optimizer(scorer, config.lr)
    per_epoch = steps_per_epoch(len(groups), config.batch_size, accelerator.num_processes)
    total = config.max_steps or config.epochs * per_epoch
    schedule = make_schedule(optimizer, total, config.warmup)
    if state is not None:
        schedule.load_state_dict(state["schedule"])
    scorer, optimizer, schedule = accelerator.prepare(scorer, optimizer, schedule)
    if state is not None:  # once prepared: FSDP shards the optimiser's state
        load_optimizer_state(scorer, optimizer, state["optimizer"])

    steps: list[dict[str, float]] = state["steps"] if state else []
    real_tokens = int(state["tokens"]) if state else 0
    train_seconds = float(state["train_seconds"]) if state else 0.0
    model.train()
    restore_rng(state)
    started = time.perf_counter()
    with progress_bar("SFT", enabled=progress and accelerator.is_main_process) as bar:
        task = bar.add_task("train", total=total, loss=float("nan"), completed=len(steps))
        batches = batch_schedule(
            [g.width for g in groups],
            config.batch_size,
            config.seed,
            total,
            processes=accelerator.num_processes,
            rank=accelerator.process_index,
        )
        for step, batch in enumerate(batches, start=1):
            if step <= len(steps):
                continue  # done before the checkpoint
            chosen = [groups[i] for i in batch]
            if config.pack:
                layout = pack_groups(chosen, config.max_length)
            else:
                layout = [[k] for k in range(len(chosen))]
            rows = group_rows(chosen, layout, pad)
            with accelerator.autocast():
                logps = answer_logprobs(scorer, rows)[:, 0]
            answer_tokens = sum(len(g.answers[0]) for g in chosen)
            # mean over answer tokens, so long answers weigh by their length
            loss = -logps.sum() / answer_tokens
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            lr = float(schedule.get_last_lr()[0])
            schedule.step()
            real_tokens += rows.real_tokens
            loss_value = float(loss.detach())
            steps.append({"step": step, "loss": loss_value, "lr": lr, "rows": len(layout)})
            bar.update(task, advance=1, loss=loss_value)
            if checkpoint_due(config, step, total):
                save_checkpoint(
                    config.out,
                    accelerator,
                    {
                        "model": gathered_state(accelerator, scorer, "model."),
                        "optimizer": optimizer_state(scorer, optimizer),
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
        "examples": len(groups),
        "truncated": sum(g.truncated for g in groups),
    }
    accelerator.wait_for_everyone()
    trained = accelerator.unwrap_model(scorer).model
    save_model(accelerator, scorer, trained, tokenizer, config.out, "model.")
    if accelerator.is_main_process:
        write_run(
            config.out,
            method="sft",
            settings=settings,
            data=data_record(data),
            metrics=metrics,
            loss_label="answer-token NLL",
            started=started_at,
        )
        shutil.rmtree(config.out / CHECKPOINT, ignore_errors=True)
    return TrainingRun(out=config.out, metrics=metrics)


def answer_nll(
    model_dir: str | Path, examples: list[Demonstration], max_length: int = 512
) -> float:
    """Return the mean per-token NLL of the examples' answers under the model at `model_dir`."""
    tokenizer, model = load_causal_lm(str(model_dir))
    groups = _groups(tokenizer, examples, max_length)
    scorer = AnswerScorer(model)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(groups), 16):
            chunk = groups[start : start + 16]
            rows = group_rows(chunk, [[k] for k in range(len(chunk))], int(tokenizer.pad_token_id))
            total += float(answer_logprobs(scorer, rows).sum())
    return -total / sum(len(g.answers[0]) for g in groups)
