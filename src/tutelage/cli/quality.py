"""`tutelage quality ...`: the quality report, the simulation, exclusions and adjudication.

The statistics libraries take a second or two to import, so they are imported inside
the commands, not when `tutelage` starts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tutelage.cli.options import DbOption, ProjectOption
from tutelage.records import ComparisonOutcome
from tutelage.store import open_store
from tutelage.store.projects import get_project
from tutelage.workspace.accounts import Actor

quality_app = typer.Typer(
    help="Agreement, consensus labels, expert reliability; exclusions and adjudication.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ExpertOption = Annotated[str, typer.Option("--expert", help="The expert's e-mail address.")]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="E-mail of the admin deciding, for the audit log [default: none]."),
]


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@quality_app.command("report")
def report_command(
    project: ProjectOption,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to write report.html, report.json and the PNG charts into."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the confidence intervals.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    db: DbOption = None,
) -> None:
    """Compute agreement, consensus, expert reliability and flags; store the consensus labels."""
    from tutelage.quality.persist import analyse_project
    from tutelage.quality.report import report_json, write_report

    store = open_store(db)
    with _progress() as progress:
        task = progress.add_task("reading the store", total=None)
        quality = analyse_project(
            store,
            project=project,
            bootstrap=bootstrap,
            seed=seed,
            progress=lambda message: progress.update(task, description=message),
        )
    if out is not None:
        written = write_report(quality, out)
        (err_console if as_json else console).print(
            f"wrote {', '.join(str(p) for p in written)}", highlight=False, markup=False
        )
    if as_json:
        typer.echo(json.dumps(report_json(quality), allow_nan=False))
        return
    _print_report(report_json(quality))


def _print_report(report: dict[str, Any]) -> None:
    from tutelage.quality.report import units_text

    judgments = report["judgments"]
    names = report["names"]
    console.print(
        f"project {report['project']!r}: {judgments['comparisons']:,} comparisons on "
        f"{units_text(judgments['items'], judgments['pairs_without_item'])} by "
        f"{judgments['workers']:,} {'judge' if judgments['workers'] == 1 else 'judges'}; "
        f"method {report['method']}",
        markup=False,
    )
    for reason, count in judgments["left_out"].items():
        console.print(f"  left out {count:,} {reason}", markup=False)
    table = Table("agreement", "value", "95% interval", "units", "note", title="Agreement")
    for name, stat in report["agreement"]["overall"].items():
        table.add_row(
            escape(name),
            _number(stat["value"]) if stat["value"] is not None else "undefined",
            "-"
            if stat["ci_low"] is None or stat["ci_high"] is None
            else f"{_number(stat['ci_low'])} to {_number(stat['ci_high'])}",
            f"{stat['n_units']:,}",
            escape(stat["note"] or ""),
        )
    console.print(table)
    summary = report["consensus_summary"]
    table = Table("method", "items", "labels", "mean confidence", title="Consensus")
    for method, figures in summary["methods"].items():
        labels = ", ".join(f"{k} {v:,}" for k, v in figures["labels"].items())
        table.add_row(method, f"{figures['items']:,}", labels, _number(figures["mean_confidence"]))
    console.print(table)
    console.print(
        f"{summary['below_threshold']:,} items below the adjudication threshold "
        f"({summary['adjudication_threshold']:.2f}); {summary['adjudicated']:,} adjudicated; "
        f"{report['stored_consensus_labels']:,} consensus labels stored"
    )
    flags: dict[str, list[str]] = {}
    for flag in report["flags"]:
        flags.setdefault(flag["worker"], []).append(flag["kind"])
    table = Table("expert", "judgments", "trust", "flags", "why", title="Experts")
    for expert in sorted(report["experts"], key=lambda e: e["trust"]):
        worker = expert["worker"]
        table.add_row(
            escape(names.get(worker, worker)) + (" (excluded)" if expert["excluded"] else ""),
            f"{expert['judgments']:,}",
            _number(expert["trust"], 2),
            ", ".join(flags.get(worker, [])),
            escape("; ".join(expert["reasons"])),
        )
    console.print(table)


@quality_app.command("exclude")
def exclude_command(
    project: ProjectOption,
    expert: ExpertOption,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Leave an expert's judgments out of consensus and datasets (undo with `include`)."""
    from tutelage.quality.decisions import exclude_expert, user_by_email

    store = open_store(db)
    with store.session() as session:
        project_id = get_project(session, name=project).id
        user = user_by_email(session, email=expert)
        actor = _actor(session, by)
        exclude_expert(session, actor=actor, project_id=project_id, user_id=user.id, reason=reason)
    console.print(
        f"excluded {user.handle!r} from project {project!r}: their judgments no longer count "
        "(run `tutelage quality report` to recompute the consensus)",
        markup=False,
    )


@quality_app.command("include")
def include_command(
    project: ProjectOption,
    expert: ExpertOption,
    reason: Annotated[str, typer.Option(help="Why the exclusion is undone.")] = "",
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Undo an expert's exclusion: their judgments count again."""
    from tutelage.quality.decisions import include_expert, user_by_email

    store = open_store(db)
    with store.session() as session:
        project_id = get_project(session, name=project).id
        user = user_by_email(session, email=expert)
        actor = _actor(session, by)
        include_expert(session, actor=actor, project_id=project_id, user_id=user.id, reason=reason)
    console.print(
        f"included {user.handle!r} in project {project!r} again "
        "(run `tutelage quality report` to recompute the consensus)",
        markup=False,
    )


def _actor(session: Any, email: str | None) -> Actor | None:
    from tutelage.quality.decisions import user_by_email

    if email is None:
        return None
    user = user_by_email(session, email=email)
    return Actor(
        user_id=user.id, handle=user.handle, role=user.role, expertise=frozenset(user.expertise)
    )


@quality_app.command("adjudicate")
def adjudicate_command(
    project: ProjectOption,
    item: Annotated[int, typer.Option(help="The comparison item's id.")],
    label: Annotated[
        ComparisonOutcome,
        typer.Option(
            help="The final label, in the item's canonical order (its first answer is a)."
        ),
    ],
    reviewer: Annotated[str, typer.Option(help="E-mail of the reviewer or admin deciding.")],
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    db: DbOption = None,
) -> None:
    """Record a reviewer's final label for an item; it overrides consensus and cannot be redone."""
    from tutelage.quality.decisions import adjudicate

    store = open_store(db)
    with store.session() as session:
        project_id = get_project(session, name=project).id
        actor = _actor(session, reviewer)
        assert actor is not None
        adjudicate(
            session, actor=actor, project_id=project_id, item_id=item, label=label.value, note=note
        )
    console.print(
        f"item {item} of project {project!r} adjudicated {label.value!r} by {actor.handle!r}",
        markup=False,
    )


@quality_app.command("simulate")
def simulate_command(
    pairs: Annotated[
        Path,
        typer.Option(
            help="Preference pairs (JSONL, JSONL.gz or Parquet; the chosen answer is the truth)."
        ),
    ],
    experts: Annotated[int, typer.Option(help="Simulated experts.")] = 30,
    overlap: Annotated[int, typer.Option(help="Experts judging each pair.")] = 3,
    adversarial: Annotated[
        float, typer.Option(help="Share of experts who flip labels (70-90% of the time).")
    ] = 0.2,
    careless: Annotated[
        float,
        typer.Option(help="Share of careless experts: random, always A, too fast, in turn."),
    ] = 0.1,
    gold: Annotated[
        int, typer.Option(help="Pairs set aside as gold items every expert answers.")
    ] = 8,
    good_accuracy: Annotated[
        tuple[float, float],
        typer.Option(help="Range the good experts' accuracy is drawn from, uniformly."),
    ] = (0.85, 0.98),
    seed: Annotated[int, typer.Option(help="Seed of everything random.")] = 0,
    max_pairs: Annotated[
        int | None, typer.Option(min=2, help="Use only the first N distinct pairs.")
    ] = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for intervals.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Store (URL or SQLite file) to keep the simulated project in [default: a "
            "temporary SQLite file, removed afterwards].",
            show_default=False,
        ),
    ] = None,
    project: Annotated[str, typer.Option(help="Name of the simulated project.")] = "simulation",
) -> None:
    """Simulate experts (good, careless, adversarial) on real pairs in a real store and score
    majority vote vs Dawid-Skene and the detection of bad experts against the truth.

    Good experts' accuracy is uniform in --good-accuracy (0.85-0.98); adversarial ones
    answer with accuracy 0.80-0.95, then flip A and B 70-90% of the time; careless ones
    click at random, always choose the answer shown as A, or answer in 3-6 s at 55%
    accuracy. An expert counts as detected when the quality library flags them.
    """
    from tutelage.quality.simulate import (
        SimulationConfig,
        SimulationError,
        read_pairs,
        run_simulation,
    )

    try:
        config = SimulationConfig(
            experts=experts,
            overlap=overlap,
            adversarial=adversarial,
            careless=careless,
            gold_items=gold,
            good_accuracy=good_accuracy,
            seed=seed,
        )
    except SimulationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    records = read_pairs(pairs, limit=max_pairs)
    if db is not None and "://" not in db:
        db = f"sqlite:///{Path(db).expanduser().resolve()}"  # a plain path is a SQLite file
    with tempfile.TemporaryDirectory(prefix="tutelage-simulation-") as folder:
        store = open_store(db or f"sqlite:///{Path(folder) / 'simulation.db'}")
        try:
            with _progress() as progress:
                tasks: dict[str, Any] = {}

                def report(phase: str, done: int, total: int) -> None:
                    if phase not in tasks:
                        tasks[phase] = progress.add_task(phase, total=total or None)
                    progress.update(tasks[phase], completed=done)

                result = run_simulation(
                    store,
                    pairs=records,
                    config=config,
                    name=project,
                    bootstrap=bootstrap,
                    progress=report,
                )
        except SimulationError as exc:
            raise typer.BadParameter(str(exc)) from exc
        finally:
            store.close()
    if as_json:
        typer.echo(json.dumps(result.to_json(), allow_nan=False))
        return
    _print_simulation(result.to_json(), stored_in=db)


def _print_simulation(result: dict[str, Any], *, stored_in: str | None) -> None:
    config = result["config"]
    console.print(
        f"{result['pairs']:,} pairs: {result['items']:,} items judged by {config['overlap']} of "
        f"{config['experts']} experts ({result['judgments']:,} judgments, gold included); "
        f"{result['bad_experts']} bad experts",
        markup=False,
    )
    accuracy = result["consensus_accuracy"]
    detection = result["detection"]
    table = Table("figure", "value", title="Against the truth")
    for name, value in accuracy.items():
        table.add_row(f"consensus accuracy, {name}", f"{value:.3f}")
    table.add_row("detection precision", f"{detection['precision']:.3f}")
    table.add_row("detection recall", f"{detection['recall']:.3f}")
    console.print(table)
    table = Table("expert", "kind", "accuracy", "flip rate", "median s", "flags", "trust")
    for expert in sorted(result["experts"], key=lambda e: (e["kind"], e["handle"])):
        table.add_row(
            expert["handle"],
            expert["kind"],
            f"{expert['accuracy']:.2f}",
            f"{expert['flip_rate']:.2f}",
            f"{expert['median_seconds']:.0f}",
            ", ".join(expert["flags"]),
            _number(expert["trust"], 2),
        )
    console.print(table)
    if stored_in:
        console.print(f"the simulated project is in {stored_in}", markup=False)
