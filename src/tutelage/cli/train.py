"""`tutelage train reward` and `tutelage score`: thin layers over `tutelage.training`.

torch is imported only inside the commands, so `tutelage --help` stays fast.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tutelage.cli.options import DbOption

train_app = typer.Typer(help="Train models from dataset versions or files.", no_args_is_help=True)
console = Console(soft_wrap=True)


@train_app.command("reward")
def train_reward_command(
    data: Annotated[str, typer.Argument(help="Dataset version name or hash, or a pairs file.")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the model and metrics.")],
    base: Annotated[
        str | None,
        typer.Option("--base", help="Base model folder [default: bundled all-MiniLM-L6-v2]."),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Pairs per step.")] = 16,
    max_length: Annotated[
        int, typer.Option("--max-length", min=8, help="Tokens per sequence; prompts cut first.")
    ] = 256,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 5e-5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    margin_from_strength: Annotated[
        bool, typer.Option("--margin-from-strength", help="Margin per preference strength.")
    ] = False,
    override: Annotated[
        str | None,
        typer.Option("--override", help="Use an unchecked or failed version, for this reason."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Train a Bradley-Terry reward model on preference pairs."""
    from tutelage.training import RewardConfig, load_pairs, train_reward

    settings = {"base": base} if base is not None else {}
    try:
        config = RewardConfig(
            out=out,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            max_length=max_length,
            lr=lr,
            seed=seed,
            margin_from_strength=margin_from_strength,
            **settings,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if out.exists() and any(out.iterdir()):
        raise typer.BadParameter(f"{out} is not empty; pick a new folder", param_hint="--out")
    loaded = load_pairs(data, db=db, override=override, actor=f"cli:{getpass.getuser()}")
    run = train_reward(config, loaded)
    final = run.metrics["final"]
    console.print(
        f"trained on {run.metrics['pairs']:,} pairs ({run.metrics['truncated']:,} cut to "
        f"{max_length} tokens) in {run.metrics['train_seconds']:.1f} s, "
        f"{run.metrics['tokens_per_second']:,.0f} tokens/s: last loss {final['loss']:.4f}, "
        f"last batch accuracy {final['accuracy']:.2f}; wrote {run.out}",
        markup=False,
        highlight=False,
    )


def score_command(
    model: Annotated[Path, typer.Argument(help="A reward model folder.")],
    data: Annotated[Path, typer.Option("--data", help="Preference pairs file.")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file: one line per completion.")],
    max_length: Annotated[int, typer.Option("--max-length", min=8)] = 256,
) -> None:
    """Write the reward of every completion in a pairs file."""
    from tutelage.training import load_pairs, score_pairs

    pairs = load_pairs(data).pairs
    scores = score_pairs(model, pairs, max_length=max_length)
    with out.open("w", encoding="utf-8") as sink:
        for index, (pair, (chosen, rejected)) in enumerate(zip(pairs, scores, strict=True)):
            for side, text, reward in (
                ("chosen", pair.chosen, chosen),
                ("rejected", pair.rejected, rejected),
            ):
                row = {
                    "pair": index,
                    "side": side,
                    "prompt": pair.prompt,
                    "completion": text,
                    "reward": reward,
                }
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    console.print(f"wrote {2 * len(pairs):,} rewards to {out}", markup=False, highlight=False)
