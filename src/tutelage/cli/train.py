"""`tutelage train reward|dpo|sft` and `tutelage score`: thin layers over `tutelage.training`.

Settings come from the config dataclass defaults, then `--config FILE.toml` (a run's
saved `config.toml` works), then the flags given on the command line. torch is imported
only inside the commands, so `tutelage --help` stays fast.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tutelage.cli.options import DbOption

train_app = typer.Typer(
    help="Train reward models, DPO and SFT from dataset versions or files.", no_args_is_help=True
)
console = Console(soft_wrap=True)

DataArgument = Annotated[
    str, typer.Argument(help="Dataset version name or hash, or a file `tutelage import` reads.")
]
OutOption = Annotated[Path, typer.Option("--out", help="New folder for the model and metrics.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", exists=True, dir_okay=False, help="TOML settings (flags win)."),
]
BaseOption = Annotated[
    str | None, typer.Option("--base", help="Base model: a local folder or a bundled name.")
]
LoraOption = Annotated[
    bool | None, typer.Option("--lora/--full", help="Train LoRA adapters instead of every weight.")
]
MaxStepsOption = Annotated[
    int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")
]
EpochsOption = Annotated[int | None, typer.Option("--epochs", min=1)]
BatchOption = Annotated[int | None, typer.Option("--batch-size", min=1, help="Examples per step.")]
LengthOption = Annotated[
    int | None,
    typer.Option("--max-length", min=8, help="Tokens per sequence; prompts are cut first."),
]
LrOption = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
WarmupOption = Annotated[
    float | None,
    typer.Option("--warmup", min=0.0, max=0.99, help="Fraction of steps warming the rate up."),
]
SeedOption = Annotated[int | None, typer.Option("--seed")]
CheckpointingOption = Annotated[
    bool | None,
    typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Less memory."),
]
PrecisionOption = Annotated[
    str | None, typer.Option("--precision", help="auto (bf16 where supported), fp32 or bf16.")
]
CheckpointEveryOption = Annotated[
    int | None,
    typer.Option("--checkpoint-every", min=0, help="Save a checkpoint every N steps (0: never)."),
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")
]
HoldoutOption = Annotated[
    float | None,
    typer.Option(
        "--holdout",
        help="Hold out this fraction of prompts (seeded) and write them to OUT/heldout.jsonl.",
    ),
]
OverrideOption = Annotated[
    str | None,
    typer.Option("--override", help="Use an unchecked or failed version, for this reason."),
]


def _settings(
    method: str,
    config_type: type[Any],
    out: Path,
    config_file: Path | None,
    resume: bool,
    **flags: Any,
) -> dict[str, Any]:
    """Return the settings: the file's (on --resume, the run's own config.toml), then
    the flags given."""
    from tutelage.training.run import config_from_file

    if not resume and out.exists() and any(out.iterdir()):
        raise typer.BadParameter(
            f"{out} is not empty; pick a new folder, or --resume", param_hint="--out"
        )
    settings: dict[str, Any] = {}
    saved = out / "config.toml"
    if resume:
        if not saved.is_file():
            raise typer.BadParameter(f"{out} holds no run to resume", param_hint="--out")
        config_file = config_file or saved
    if config_file is not None:
        try:
            settings.update(config_from_file(config_file, method, config_type))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--config") from exc
        try:  # a bad value in the file is named with the file (the base is checked later)
            config_type(**{**settings, "base": "-", "out": out})
        except (TypeError, ValueError) as exc:
            raise typer.BadParameter(f"{config_file}: {exc}", param_hint="--config") from exc
    settings.update({k: v for k, v in flags.items() if v is not None})
    if "base" in settings:
        settings["base"] = _resolve_base(str(settings["base"]))
    settings["out"] = out
    return settings


def _resolve_base(base: str) -> str:
    """Return a bundled model's folder for its name; anything else is a path, as given."""
    from tutelage.generation.bundled import bundled_names, prepare

    if base in bundled_names() and not Path(base).exists():
        return str(prepare(base, progress=False))
    if not Path(base).is_dir():
        raise typer.BadParameter(
            f"{base} is neither a model folder nor a bundled model ({', '.join(bundled_names())})",
            param_hint="--base",
        )
    return base


def _make(config_type: type[Any], settings: dict[str, Any]) -> Any:
    try:
        return config_type(**settings)
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def _holdout(
    method: str, out: Path, config_file: Path | None, resume: bool, given: float | None
) -> float | None:
    """Return the fraction of prompts to hold out: --holdout, else the config file's
    `data_holdout`; a resume holds out what the run held out, and refuses another."""
    from tutelage.training.run import holdout_from_file

    source = out / "config.toml" if resume else config_file
    try:
        saved = holdout_from_file(source, method) if source is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    if resume and given is not None and given != saved:
        raise typer.BadParameter(
            f"the run in {out} held out {'nothing' if saved is None else f'{saved:g}'}; "
            "--resume holds out the same prompts (leave --holdout off)",
            param_hint="--holdout",
        )
    return given if given is not None else saved


def _hold_out(data: Any, fraction: float | None, seed: int) -> tuple[Any, list[Any]]:
    """Return (`data` without the held-out prompts, recording the fraction; the held-out
    pairs)."""
    from dataclasses import replace

    from tutelage.training import split_by_prompt

    if fraction is None:
        return data, []
    try:
        train, held = split_by_prompt(data.pairs, fraction=fraction, seed=seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--holdout") from exc
    console.print(
        f"holding out {len(held):,} pairs ({fraction:.0%} of prompts, seed {seed}); "
        f"training on {len(train):,}",
        markup=False,
        highlight=False,
    )
    return replace(data, pairs=train, held_out=fraction), held


def _write_held_out(held: list[Any], out: Path) -> None:
    """Write the held-out pairs to OUT/heldout.jsonl in TRL's conversational form."""
    from tutelage.files import write_text_whole

    if not held:
        return
    lines = []
    for pair in held:
        messages = pair.messages or (("user", pair.prompt),)
        row = {
            "prompt": [{"role": r, "content": c} for r, c in messages],
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    write_text_whole(out / "heldout.jsonl", "".join(lines))
    console.print(
        f"held-out pairs: {out / 'heldout.jsonl'} (try `tutelage eval reward {out} "
        f"--data {out / 'heldout.jsonl'}`)",
        markup=False,
        highlight=False,
    )


def quiet_transformers() -> None:
    """Keep transformers' load reports, weight-loading bars and tokenizer length warnings
    off a command's output: a new head is meant to be untrained, and the trainers cut long
    sequences themselves. Our own progress bar and summary remain."""
    import transformers

    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _train(train: Any, config: Any, data: Any, resume: bool) -> Any:
    """Run `train`; a problem with the data, the folder or the settings is one line."""
    quiet_transformers()
    try:
        return train(config, data, resume=resume)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False
        )
        raise typer.Exit(1) from exc


def _report(run: Any, unit: str) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun / accelerate launch, the first process reports
    metrics = run.metrics
    final = metrics.get("final") or metrics["members"][-1]
    reference = metrics.get("reference_seconds")
    console.print(
        f"trained on {metrics.get(unit, 0):,} {unit} ({metrics['truncated']:,} cut to fit) "
        f"in {metrics['train_seconds']:.1f} s"
        + (f" (+{reference:.1f} s reference pass)" if reference is not None else "")
        + f", {metrics['tokens_per_second']:,.0f} tokens/s, peak {metrics['peak_memory_mb']:,.0f}"
        f" MiB: last loss {final['loss']:.4f}; wrote {run.out}",
        markup=False,
        highlight=False,
    )


@train_app.command("reward")
def train_reward_command(
    data: DataArgument,
    out: OutOption,
    config: ConfigOption = None,
    base: BaseOption = None,
    lora: LoraOption = None,
    max_steps: MaxStepsOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchOption = None,
    max_length: LengthOption = None,
    lr: LrOption = None,
    warmup: WarmupOption = None,
    seed: SeedOption = None,
    margin_from_strength: Annotated[
        bool | None, typer.Option("--margin-from-strength", help="Margin per preference strength.")
    ] = None,
    ensemble: Annotated[
        int | None,
        typer.Option("--ensemble", min=1, help="Train k members (seeds differ); spread = doubt."),
    ] = None,
    gradient_checkpointing: CheckpointingOption = None,
    precision: PrecisionOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    holdout: HoldoutOption = None,
    resume: ResumeOption = False,
    override: OverrideOption = None,
    db: DbOption = None,
) -> None:
    """Train a Bradley-Terry reward model (default base: the bundled all-MiniLM-L6-v2)."""
    from tutelage.training import RewardConfig, load_pairs, train_reward

    settings = _settings(
        "reward",
        RewardConfig,
        out,
        config,
        resume,
        base=base,
        lora=lora,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        lr=lr,
        warmup=warmup,
        seed=seed,
        margin_from_strength=margin_from_strength,
        ensemble=ensemble,
        gradient_checkpointing=gradient_checkpointing,
        precision=precision,
        checkpoint_every=checkpoint_every,
    )
    run_config = _make(RewardConfig, settings)
    loaded = load_pairs(data, db=db, override=override, actor=f"cli:{getpass.getuser()}")
    fraction = _holdout("reward", out, config, resume, holdout)
    loaded, held = _hold_out(loaded, fraction, run_config.seed)
    _report(_train(train_reward, run_config, loaded, resume), "pairs")
    if int(os.environ.get("RANK", "0")) == 0:
        _write_held_out(held, out)


@train_app.command("dpo")
def train_dpo_command(
    data: DataArgument,
    out: OutOption,
    config: ConfigOption = None,
    base: BaseOption = None,
    lora: LoraOption = None,
    max_steps: MaxStepsOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchOption = None,
    max_length: LengthOption = None,
    lr: LrOption = None,
    warmup: WarmupOption = None,
    seed: SeedOption = None,
    loss: Annotated[str | None, typer.Option("--loss", help="sigmoid (DPO) or ipo.")] = None,
    beta: Annotated[float | None, typer.Option("--beta", help="KL strength.")] = None,
    nll_weight: Annotated[
        float | None,
        typer.Option("--nll-weight", help="Weight of the chosen answers' NLL (0: off)."),
    ] = None,
    gradient_checkpointing: CheckpointingOption = None,
    precision: PrecisionOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    holdout: HoldoutOption = None,
    resume: ResumeOption = False,
    override: OverrideOption = None,
    db: DbOption = None,
) -> None:
    """Align a policy with DPO or IPO (default policy: the bundled SmolLM2-135M-Instruct)."""
    from tutelage.training import DPOConfig, load_pairs, train_dpo

    settings = _settings(
        "dpo",
        DPOConfig,
        out,
        config,
        resume,
        base=base,
        lora=lora,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        lr=lr,
        warmup=warmup,
        seed=seed,
        loss=loss,
        beta=beta,
        nll_weight=nll_weight,
        gradient_checkpointing=gradient_checkpointing,
        precision=precision,
        checkpoint_every=checkpoint_every,
    )
    run_config = _make(DPOConfig, settings)
    loaded = load_pairs(data, db=db, override=override, actor=f"cli:{getpass.getuser()}")
    fraction = _holdout("dpo", out, config, resume, holdout)
    loaded, held = _hold_out(loaded, fraction, run_config.seed)
    _report(_train(train_dpo, run_config, loaded, resume), "pairs")
    if int(os.environ.get("RANK", "0")) == 0:
        _write_held_out(held, out)


@train_app.command("sft")
def train_sft_command(
    data: DataArgument,
    out: OutOption,
    config: ConfigOption = None,
    base: BaseOption = None,
    lora: LoraOption = None,
    max_steps: MaxStepsOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchOption = None,
    max_length: LengthOption = None,
    lr: LrOption = None,
    warmup: WarmupOption = None,
    seed: SeedOption = None,
    pack: Annotated[
        bool | None, typer.Option("--pack/--no-pack", help="Several examples per row.")
    ] = None,
    gradient_checkpointing: CheckpointingOption = None,
    precision: PrecisionOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    resume: ResumeOption = False,
    override: OverrideOption = None,
    db: DbOption = None,
) -> None:
    """Fine-tune on demonstrations (rewrites, answers), loss on the answer tokens only."""
    from tutelage.training import SFTConfig, load_demonstrations, train_sft

    settings = _settings(
        "sft",
        SFTConfig,
        out,
        config,
        resume,
        base=base,
        lora=lora,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        lr=lr,
        warmup=warmup,
        seed=seed,
        pack=pack,
        gradient_checkpointing=gradient_checkpointing,
        precision=precision,
        checkpoint_every=checkpoint_every,
    )
    run_config = _make(SFTConfig, settings)
    loaded = load_demonstrations(data, db=db, override=override, actor=f"cli:{getpass.getuser()}")
    _report(_train(train_sft, run_config, loaded, resume), "examples")


def score_command(
    model: Annotated[Path, typer.Argument(help="A reward model (or ensemble) folder.")],
    data: Annotated[Path, typer.Option("--data", help="Preference pairs file.")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file: one line per completion.")],
    max_length: Annotated[int, typer.Option("--max-length", min=8)] = 256,
) -> None:
    """Write the reward of every completion in a pairs file (with the ensemble's spread),
    and the probability that it is preferred to the other answer of its pair."""
    import statistics

    from tutelage.evaluation import CALIBRATION_FILE, preference_probabilities, saved_temperature
    from tutelage.training import load_pairs, score_ensemble

    quiet_transformers()

    if not model.is_dir():
        raise typer.BadParameter(f"{model} is not a model folder", param_hint="MODEL")
    temperature = saved_temperature(model)
    pairs = load_pairs(data).pairs
    members = score_ensemble(model, pairs, max_length=max_length)
    with out.open("w", encoding="utf-8") as sink:
        for index, pair in enumerate(pairs):
            means = [statistics.fmean(m[index][side] for m in members) for side in (0, 1)]
            chosen_wins = preference_probabilities([means[0] - means[1]], temperature or 1.0)[0][0]
            for side, text in ((0, pair.chosen), (1, pair.rejected)):
                rewards = [m[index][side] for m in members]
                row: dict[str, Any] = {
                    "pair": index,
                    "side": ("chosen", "rejected")[side],
                    "prompt": pair.prompt,
                    "completion": text,
                    "reward": means[side],
                    "probability_preferred": chosen_wins if side == 0 else 1.0 - chosen_wins,
                }
                if len(members) > 1:
                    row["reward_std"] = statistics.stdev(rewards)
                    row["member_rewards"] = rewards
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    how = (
        f"calibrated with the temperature {temperature:.3f} in {model / CALIBRATION_FILE}"
        if temperature
        else "not calibrated: `tutelage eval reward --fit-temperature` fits a temperature"
    )
    console.print(
        f"wrote {2 * len(pairs):,} rewards to {out}; probabilities {how}",
        markup=False,
        highlight=False,
    )
