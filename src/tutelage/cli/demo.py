"""`tutelage demo`: the walk-through `make demo` runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tutelage.cli.options import DbOption
from tutelage.cli.store import print_summary
from tutelage.store import open_store
from tutelage.store.projects import get_project, project_summary

console = Console(soft_wrap=True)


def demo_command(
    generate: Annotated[
        bool,
        typer.Option(help="Generate candidates with the bundled model for prompts lacking two."),
    ] = True,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 96,
    serve: Annotated[
        bool, typer.Option(help="Serve the workspace on --host:--port when set up.")
    ] = True,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: DbOption = None,
) -> None:
    """Set up a demo project from sample data, with candidates, people and items; serve it."""
    from tutelage.demo import DEMO_PROJECT, generated_example, set_up_demo

    store = open_store(db)
    console.rule("tutelage demo")
    console.print(f"store: {store.url}")
    result = set_up_demo(store)
    console.print(
        f"project {DEMO_PROJECT.name!r}: " + ("created" if result.created else "exists already")
    )
    for report in result.imports:
        console.print(
            f"imported {report.records_stored} records from {report.path} "
            f"({report.format}, {report.skipped_total} skipped)"
        )
    if generate:
        from tutelage.generation import backend_for
        from tutelage.generation.candidates import add_candidates

        generated = add_candidates(
            store,
            project=DEMO_PROJECT.name,
            backend=backend_for("smollm2-135m-instruct"),
            n=3,  # three answers per generated prompt, so ranking has something to rank
            temperature=0.8,
            max_new_tokens=max_new_tokens,
            seed=0,
        )
        console.print(
            f"generated {generated.completions_added} candidate completions for "
            f"{generated.prompts} prompts with the bundled SmolLM2-135M-Instruct"
        )
    example = generated_example(store)
    if example is not None:
        question, model_id, answer = example
        # Model output is untrusted text: escape it so it cannot inject console markup.
        console.print(
            f"[bold]prompt:[/] {escape(question)}\n[bold]{escape(model_id)}:[/] {escape(answer)}"
        )
    from tutelage.demo.workspace import SIMULATED_EXPERTS, seed_workspace

    logins = seed_workspace(store)  # people, items, and the simulated experts' judgments
    with store.session() as session:
        project_id = get_project(session, name=DEMO_PROJECT.name).id
        print_summary(project_summary(session, name=DEMO_PROJECT.name))
    console.rule("workspace")
    for login in logins:
        console.print(f"{login.role:>8}: {login.email}  password: {login.password}")
    console.print(
        f"{len(SIMULATED_EXPERTS)} simulated experts ({SIMULATED_EXPERTS[0].handle} to "
        f"{SIMULATED_EXPERTS[-1].handle}) have judged every comparison item; see "
        f"/admin/projects/{project_id}/quality, and /review as the reviewer"
    )
    if not serve:
        console.print("serve it with: tutelage serve")
        return
    console.print(f"open http://{host}:{port}/ and sign in (Ctrl-C stops the server)")
    store.close()
    from tutelage.cli.serve import serve_command

    serve_command(db=db, host=host, port=port)
