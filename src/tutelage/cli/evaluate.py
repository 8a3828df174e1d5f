"""`tutelage eval reward`: a thin layer over `tutelage.training.evaluate`.

torch is imported only inside the command, so `tutelage --help` stays fast.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tutelage.cli.options import DbOption

eval_app = typer.Typer(help="Evaluate trained models on held-out data.", no_args_is_help=True)
console = Console(soft_wrap=True)


@eval_app.command("reward")
def eval_reward_command(
    model: Annotated[Path, typer.Argument(help="A reward model folder.")],
    data: Annotated[
        str,
        typer.Option("--data", help="Preference pairs file, or dataset version name or hash."),
    ],
    split: Annotated[
        str, typer.Option("--split", help="Split of a dataset version (files have none).")
    ] = "test",
    max_length: Annotated[
        int, typer.Option("--max-length", min=8, help="Tokens per sequence; prompts cut first.")
    ] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    override: Annotated[
        str | None,
        typer.Option("--override", help="Use an unchecked or failed version, for this reason."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Print a reward model's pairwise accuracy beside the "longer answer wins" baseline."""
    from tutelage.cli.train import quiet_transformers
    from tutelage.training import load_pairs
    from tutelage.training.evaluate import evaluate_reward
    from tutelage.training.reward import ENSEMBLE_FILE

    quiet_transformers()

    # a full model, a LoRA adapter or an ensemble of either
    markers = ("config.json", "adapter_config.json", ENSEMBLE_FILE)
    if not model.is_dir():
        raise typer.BadParameter(f"no model folder at {model}", param_hint="MODEL")
    if not any((model / marker).is_file() for marker in markers):
        raise typer.BadParameter(
            f"{model} is not a reward model folder (no {', '.join(markers)})", param_hint="MODEL"
        )

    loaded = load_pairs(
        data, db=db, split=split, override=override, actor=f"cli:{getpass.getuser()}"
    )
    if not loaded.pairs:
        where = f"split {split!r} of {loaded.source}" if loaded.version_name else loaded.source
        raise typer.BadParameter(f"no preference pairs in {where}", param_hint="--data")
    result = evaluate_reward(model, loaded.pairs, max_length=max_length)
    if as_json:
        typer.echo(json.dumps({**asdict(result), "source": loaded.source}))
        return
    lead = 100 * (result.accuracy - result.length_baseline_accuracy)
    verdict = (
        f"beats the length baseline by {lead:.1f} points"
        if result.beats_length_baseline
        else f"does NOT beat the length baseline ({lead:+.1f} points)"
    )
    console.print(
        f"{result.n:,} pairs from {loaded.source}: accuracy {result.accuracy:.1%} "
        f"(ties counted half), longer answer wins {result.length_baseline_accuracy:.1%}, "
        f"mean margin {result.mean_margin:+.3f}; the model {verdict}",
        markup=False,
        highlight=False,
    )
