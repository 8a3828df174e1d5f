"""`tutelage generate`: candidate completions for a project's prompts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tutelage.cli.options import DbOption, ProjectOption
from tutelage.store import open_store

console = Console(soft_wrap=True)


def generate_command(
    project: ProjectOption,
    model: Annotated[
        str,
        typer.Option(
            help="A bundled model name, a local transformers folder, or an OpenAI-compatible "
            "server as URL#MODEL (e.g. http://127.0.0.1:8001/v1#qwen2)."
        ),
    ] = "smollm2-135m-instruct",
    n: Annotated[int, typer.Option("--n", min=1, help="Completions wanted per prompt.")] = 2,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 256,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    limit: Annotated[int | None, typer.Option(help="At most this many prompts.")] = None,
    db: DbOption = None,
) -> None:
    """Add candidate completions to every prompt of a project that has fewer than --n."""
    from tutelage.generation import backend_for
    from tutelage.generation.candidates import add_candidates, prompts_needing_candidates

    store = open_store(db)
    needed = prompts_needing_candidates(store, project=project, n=n, limit=limit)
    if not needed:
        console.print(f"every prompt of {project!r} has {n} or more completions already")
        return
    backend = backend_for(model)
    with Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("prompts"),
        TimeElapsedColumn(),
        console=Console(stderr=True, soft_wrap=True),
    ) as progress:
        task = progress.add_task("generate", total=len(needed))
        report = add_candidates(
            store,
            project=project,
            backend=backend,
            n=n,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed,
            batch_size=batch_size,
            limit=limit,
            on_batch=lambda done: progress.advance(task, done),
        )
    console.print(
        f"added {report.completions_added:,} completions from {backend.model_id!r} "
        f"to {report.prompts:,} prompts of {project!r}"
        + (f" ({report.duplicates} duplicate texts not stored)" if report.duplicates else "")
    )
