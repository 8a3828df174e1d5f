"""Direct preference optimisation of a causal LM on preference pairs.

One config, one train function, top to bottom. The reference model's log-probabilities
are computed once, before training, by the policy itself (it starts as the reference),
and saved with the run (`reference_logps.pt`): no second model is ever held in memory.
Each pair is one row ``[prompt][chosen][rejected]`` (see `sequences`), so the prompt is
computed once per pair, and rows are grouped by length so little is padding.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tutelage.files import write_whole
from tutelage.training.data import PreferenceData, TrainingPair
from tutelage.training.losses import chosen_nll_loss, dpo_loss, ipo_loss
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
)

__all__ = [
    "DPOConfig",
    "default_policy",
    "load_causal_lm",
    "policy_logps",
    "tokenise_groups",
    "train_dpo",
]

LOSSES = ("sigmoid", "ipo")
REFERENCE_FILE = "reference_logps.pt"


def default_policy() -> str:
    """Return the folder of the bundled SmolLM2-135M-Instruct (prepared on first use)."""
    from tutelage.generation.bundled import prepare

    return str(prepare("smollm2-135m-instruct", progress=False))


@dataclass
class DPOConfig:
    """Everything needed to rerun a DPO training; saved as `config.toml`."""

    out: Path
    base: str = field(default_factory=default_policy)
    loss: str = "sigmoid"
    beta: float = 0.1
    # weight of the chosen answers' per-token NLL added to the loss ("RPO"); 0 turns it off
    nll_weight: float = 0.0
    max_steps: int | None = None
    epochs: int = 1
    batch_size: int = 4
    max_length: int = 256
    lr: float = 1e-6
    # fraction of the steps over which the learning rate climbs to `lr`
    warmup: float = 0.0
    seed: int = 0
    gradient_checkpointing: bool = False
    precision: str = "auto"
    lora: bool = False
    lora_rank: int = 16
    checkpoint_every: int = 200
    dropout: bool = False

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, not {self.beta}")
        if self.nll_weight < 0:
            raise ValueError(f"nll_weight must be at least 0, not {self.nll_weight}")
        check_common(self)


def load_causal_lm(base: str) -> tuple[Any, Any]:
    """Return (tokenizer with a pad token, causal LM in fp32) from a local folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def tokenise_groups(tokenizer: Any, pairs: list[TrainingPair], max_length: int) -> list[Group]:
    """Return one group (prompt, chosen, rejected) per pair, each cut to fit `max_length`."""
    return [
        fit_group(
            encode_prompt(tokenizer, pair.messages, pair.prompt),
            [
                encode_answer_ids(tokenizer, pair.chosen),
                encode_answer_ids(tokenizer, pair.rejected),
            ],
            max_length,
        )
        for pair in pairs
    ]


def reference_logps(
    model: Any,
    groups: list[Group],
    pad_token_id: int,
    batch_size: int,
    accelerator: Any,
    *,
    progress: bool = False,
) -> torch.Tensor:
    """Return the (pairs, 2) summed log-probabilities of chosen and rejected under `model`
    as it is now, computed without gradients in length-sorted batches. Under several
    processes each computes every n-th pair of the sorted order and all receive the
    whole table, so the pass takes 1/n of the time a single process would."""
    scorer = AnswerScorer(model).to(accelerator.device)
    order = sorted(range(len(groups)), key=lambda i: groups[i].width)
    mine = order[accelerator.process_index :: accelerator.num_processes]
    result = torch.zeros((len(groups), 2))
    model.eval()
    bar = progress_bar("reference pass", enabled=progress, loss=False)
    with torch.no_grad(), accelerator.autocast(), bar:
        task = bar.add_task("reference", total=len(mine))
        for start in range(0, len(mine), batch_size):
            chunk = mine[start : start + batch_size]
            rows = group_rows(
                [groups[i] for i in chunk], [[k] for k in range(len(chunk))], pad_token_id
            )
            result[chunk] = answer_logprobs(scorer, rows).float().cpu()
            bar.update(task, advance=len(chunk))
    if accelerator.num_processes > 1:
        # every other process left this one's rows at zero: the sum is the whole table
        result = accelerator.reduce(result.to(accelerator.device), "sum").cpu()
    return result


def train_dpo(
    config: DPOConfig, data: PreferenceData, *, progress: bool = True, resume: bool = False
) -> TrainingRun:
    """Train the policy at `config.base` on `data` with DPO (or IPO); write the run to
    `config.out`. With `resume`, continue from the checkpoint in `config.out`."""
    if not data.pairs:
        raise ValueError(f"no preference pairs to train on in {data.source}")
    settings = config_settings(config)
    state = open_run(config.out, resume, settings, data)
    started_at = time.time()
    torch.manual_seed(config.seed)
    accelerator = make_accelerator(config.precision)
    if accelerator.is_main_process:
        write_config(config.out, method="dpo", settings=settings, data=data_record(data))
    tokenizer, model = load_causal_lm(config.base)
    pad = int(tokenizer.pad_token_id)
    groups = tokenise_groups(tokenizer, data.pairs, config.max_length)

    # the reference pass: once, before training, by the policy as it starts
    cached = config.out / REFERENCE_FILE
    reference_started = time.perf_counter()
    if resume and cached.is_file():
        reference = torch.load(cached)
    else:
        reference = reference_logps(
            model,
            groups,
            pad,
            4 * config.batch_size,
            accelerator,
            progress=progress and accelerator.is_main_process,
        )
        if accelerator.is_main_process:
            config.out.mkdir(parents=True, exist_ok=True)
            write_whole(cached, lambda partial: torch.save(reference, partial))
    reference_seconds = time.perf_counter() - reference_started

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
    answer_tokens = torch.tensor([[len(a) for a in g.answers] for g in groups], dtype=torch.float32)

    steps: list[dict[str, float]] = state["steps"] if state else []
    real_tokens = int(state["tokens"]) if state else 0
    train_seconds = float(state["train_seconds"]) if state else 0.0
    model.train()
    restore_rng(state)
    started = time.perf_counter()
    with progress_bar("DPO", enabled=progress and accelerator.is_main_process) as bar:
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
            rows = group_rows([groups[i] for i in batch], [[k] for k in range(len(batch))], pad)
            with accelerator.autocast():
                policy = answer_logprobs(scorer, rows)
            ref = reference[batch].to(policy.device)
            counts = answer_tokens[batch].to(policy.device)
            if config.loss == "ipo":
                # IPO compares log-probabilities averaged over each answer's tokens
                loss = ipo_loss(
                    policy[:, 0] / counts[:, 0],
                    policy[:, 1] / counts[:, 1],
                    ref[:, 0] / counts[:, 0],
                    ref[:, 1] / counts[:, 1],
                    config.beta,
                )
            else:
                loss = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], config.beta)
            if config.nll_weight:
                loss = loss + config.nll_weight * chosen_nll_loss(policy[:, 0], counts[:, 0])
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            lr = float(schedule.get_last_lr()[0])
            schedule.step()
            rewards = config.beta * (policy.detach() - ref)
            real_tokens += rows.real_tokens
            loss_value = float(loss.detach())
            steps.append(
                {
                    "step": step,
                    "loss": loss_value,
                    "accuracy": float((rewards[:, 0] > rewards[:, 1]).float().mean()),
                    "margin": float((rewards[:, 0] - rewards[:, 1]).mean()),
                    "chosen_reward": float(rewards[:, 0].mean()),
                    "lr": lr,
                }
            )
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
        "reference_seconds": reference_seconds,
        "pairs": len(groups),
        "truncated": sum(g.truncated for g in groups),
    }
    accelerator.wait_for_everyone()
    trained = accelerator.unwrap_model(scorer).model
    save_model(accelerator, scorer, trained, tokenizer, config.out, "model.")
    if accelerator.is_main_process:
        write_run(
            config.out,
            method="dpo",
            settings=settings,
            data=data_record(data),
            metrics=metrics,
            loss_label=f"{config.loss} loss",
            started=started_at,
        )
        shutil.rmtree(config.out / CHECKPOINT, ignore_errors=True)
    return TrainingRun(out=config.out, metrics=metrics)


def policy_logps(
    model_dir: str | Path, pairs: list[TrainingPair], max_length: int = 256
) -> torch.Tensor:
    """Return the (pairs, 2) summed log-probabilities of chosen and rejected answers under
    the causal LM at `model_dir` (a policy, or the base it started from)."""
    tokenizer, model = load_causal_lm(str(model_dir))
    groups = tokenise_groups(tokenizer, pairs, max_length)
    return reference_logps(model, groups, int(tokenizer.pad_token_id), 16, make_accelerator("fp32"))
