"""`tutelage demo`: the walk-through `make demo` runs.

The workspace serves as soon as the logins exist (a few seconds); candidate answers,
items and the simulated experts' judgments are made while it serves, with progress, so
a person can open the page at once. Each step is kept as it finishes: a second run, or
one after Ctrl-C, does only what is missing.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tutelage.cli.options import DbOption
from tutelage.cli.store import print_summary
from tutelage.store import Store, open_store
from tutelage.store.projects import get_project, project_summary

console = Console(soft_wrap=True)


def demo_command(
    generate: Annotated[
        bool,
        typer.Option(help="Generate candidates with the bundled model for prompts lacking two."),
    ] = True,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 96,
    serve: Annotated[
        bool, typer.Option(help="Serve the workspace on --host:--port while it is set up.")
    ] = True,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: DbOption = None,
) -> None:
    """Set up a demo project from sample data, with candidates, people and items; serve it."""
    from tutelage.demo import DEMO_PROJECT, set_up_demo
    from tutelage.demo.workspace import seed_people

    listener = None
    if serve:
        from tutelage.cli.serve import listen

        listener = listen(host, port)  # a taken port is said before any work
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
    logins = seed_people(store)
    server = thread = None
    if listener is not None:
        from tutelage.cli.serve import serve_in_background
        from tutelage.web import ServerSettings

        settings = ServerSettings(host=host, port=port, db=store.url)
        server, thread = serve_in_background(store, settings, listener)
        console.rule("workspace")
        console.print(f"serving http://{host}:{port}/ - sign in now; Ctrl-C stops it")
        for login in logins:
            console.print(f"{login.role:>8}: {login.email}  password: {login.password}")
        console.print("the demo project fills in while the steps below run")
    try:
        _fill(store, generate=generate, max_new_tokens=max_new_tokens)
        if thread is None:
            console.rule("workspace")
            for login in logins:
                console.print(f"{login.role:>8}: {login.email}  password: {login.password}")
            console.print("serve it with: tutelage serve")
            return
        console.print(f"ready: open http://{host}:{port}/ (Ctrl-C stops the server)")
        while thread.is_alive():
            thread.join(timeout=0.5)
    except KeyboardInterrupt:
        console.print("stopping (what is done is kept; run it again to finish)")
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=30)
        store.close()


def _fill(store: Store, *, generate: bool, max_new_tokens: int) -> None:
    """Candidates, items, the simulated experts and their consensus; each step once."""
    from tutelage.demo import DEMO_PROJECT, generated_example
    from tutelage.demo.workspace import SIMULATED_EXPERTS, seed_items, seed_simulated_experts

    if generate:
        _generate(store, max_new_tokens)
    example = generated_example(store)
    if example is not None:
        question, model_id, answer = example
        # Model output is untrusted text: escape it so it cannot inject console markup.
        console.print(
            f"[bold]prompt:[/] {escape(question)}\n[bold]{escape(model_id)}:[/] {escape(answer)}"
        )
    built = seed_items(store)
    if built:
        console.print(f"built {built} items of every task kind")
    with _bar() as progress:
        task = progress.add_task("simulated experts judging", total=len(SIMULATED_EXPERTS))
        made = seed_simulated_experts(
            store,
            on_expert=lambda handle: progress.update(
                task, description=f"simulated expert {handle} judging", advance=1
            ),
        )
    if made:
        console.print(
            f"{len(SIMULATED_EXPERTS)} simulated experts ({SIMULATED_EXPERTS[0].handle} to "
            f"{SIMULATED_EXPERTS[-1].handle}) made {made} judgments; consensus stored"
        )
    with store.session() as session:
        project_id = get_project(session, name=DEMO_PROJECT.name).id
        print_summary(project_summary(session, name=DEMO_PROJECT.name))
    console.print(
        f"see /admin/projects/{project_id}/quality as the admin, and /review as the reviewer"
    )


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _generate(store: Store, max_new_tokens: int) -> None:
    from tutelage.cli.train import quiet_transformers
    from tutelage.demo import DEMO_PROJECT
    from tutelage.generation import backend_for
    from tutelage.generation.candidates import add_candidates, prompts_needing_candidates

    needed = prompts_needing_candidates(store, project=DEMO_PROJECT.name, n=3)
    if not needed:
        return
    with _bar() as progress:
        task = progress.add_task("loading the bundled SmolLM2-135M-Instruct", total=len(needed))
        quiet_transformers()
        backend = backend_for("smollm2-135m-instruct")
        progress.update(task, description="generating candidate answers")
        generated = add_candidates(
            store,
            project=DEMO_PROJECT.name,
            backend=backend,
            n=3,  # three answers per generated prompt, so ranking has something to rank
            temperature=0.8,
            max_new_tokens=max_new_tokens,
            seed=0,
            batch_size=4,  # the bar moves every few prompts
            on_batch=lambda done: progress.advance(task, done),
        )
    console.print(
        f"generated {generated.completions_added} candidate completions for "
        f"{generated.prompts} prompts with the bundled SmolLM2-135M-Instruct"
    )
