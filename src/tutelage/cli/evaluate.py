"""`tutelage eval reward`: a thin layer over `tutelage.evaluation`.

torch is imported only inside the command, so `tutelage --help` stays fast.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tutelage.cli.options import DbOption

if TYPE_CHECKING:
    from tutelage.evaluation import RewardAudit
    from tutelage.evaluation.sycophancy import FormRate

eval_app = typer.Typer(help="Evaluate and audit trained models.", no_args_is_help=True)
console = Console(soft_wrap=True)
status = Console(stderr=True)


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _describe(audit: RewardAudit) -> None:
    e = audit.evaluation
    lead = 100 * (e.accuracy - e.length_baseline_accuracy)
    verdict = (
        f"beats the length baseline by {lead:.1f} points"
        if e.beats_length_baseline
        else f"does NOT beat the length baseline ({lead:+.1f} points)"
    )
    _say(
        f"{e.n:,} pairs from {audit.source}: accuracy {e.accuracy:.1%} "
        f"(ties counted half), longer answer wins {e.length_baseline_accuracy:.1%}, "
        f"mean margin {e.mean_margin:+.3f}; the model {verdict}"
    )
    interval = (
        f"95% interval {_percent(audit.accuracy_low)} to {_percent(audit.accuracy_high)}"
        if audit.accuracy_low is not None
        else "no interval (one pair)"
    )
    if e.n < 100:
        interval += f" (only {e.n} pairs: a weak verdict)"
    c, length = audit.calibration, audit.length
    calibrated = (
        f", with the saved temperature {audit.calibrated.temperature:.2f}: "
        f"ECE {audit.calibrated.ece:.3f}"
        if audit.calibrated is not None
        else ""
    )
    shorter = (
        f"{_percent(length.accuracy_chosen_shorter)} ({length.chosen_shorter:,} pairs)"
        if length.chosen_shorter
        else "no such pair"
    )
    _say(
        f"  {interval}; calibration: ECE {c.ece:.3f} (equal-mass {c.ece_equal_mass:.3f}), "
        f"Brier {c.brier:.3f}{calibrated}"
    )
    _say(
        f"  length: reward vs length Spearman {_number(_finite(length.reward_length_spearman))}, "
        f"accuracy where the chosen answer is shorter {shorter}, "
        f"length-controlled accuracy {length.length_controlled_accuracy:.1%}"
    )
    if audit.robustness:
        flips = ", ".join(f"{f.name} {_percent(f.flip_rate)}" for f in audit.robustness)
        tried = audit.robustness[0]
        sampled = (
            f" (each tried on {tried.correct:,} of the {tried.eligible:,})"
            if tried.correct < tried.eligible
            else ""
        )
        _say(f"  correct verdicts flipped{sampled} by: {flips}")
    if audit.spread_auroc is not None:
        _say(f"  ensemble spread picks out mistakes with AUROC {audit.spread_auroc:.3f}")


def _finite(value: float) -> float | None:
    return None if value != value else value


@eval_app.command("reward")
def eval_reward_command(
    model: Annotated[Path, typer.Argument(help="A reward model (or ensemble) folder.")],
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            help="Preference pairs file, or dataset version name or hash; repeat for more.",
        ),
    ],
    split: Annotated[
        str, typer.Option("--split", help="Split of a dataset version (files have none).")
    ] = "test",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for report.json and report.html (with plots)."),
    ] = None,
    robustness: Annotated[
        bool,
        typer.Option(
            "--robustness/--no-robustness",
            help="Score perturbed answers too (one more answer scored per perturbation).",
        ),
    ] = True,
    perturbations: Annotated[
        list[str] | None,
        typer.Option("--perturbation", help="Only this perturbation; repeat for more."),
    ] = None,
    robustness_sample: Annotated[
        int,
        typer.Option(
            "--robustness-sample",
            min=0,
            help="Try each perturbation on at most this many correct verdicts (seeded); 0: on all.",
        ),
    ] = 1_000,
    fit_temperature: Annotated[
        bool,
        typer.Option(
            "--fit-temperature",
            help="Fit temperature scaling on half the first data set's prompts, measure it "
            "on the rest, and save it with the model.",
        ),
    ] = False,
    max_length: Annotated[
        int, typer.Option("--max-length", min=8, help="Tokens per sequence; prompts cut first.")
    ] = 256,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: one object per data set (a list).")
    ] = False,
    override: Annotated[
        str | None,
        typer.Option("--override", help="Use an unchecked or failed version, for this reason."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Audit a reward model: accuracy beside the "longer answer wins" baseline, with its
    interval, calibration, length bias and robustness, per data set; kept in the store."""
    from tutelage.cli.progress import steps
    from tutelage.cli.train import quiet_transformers
    from tutelage.evaluation import (
        CALIBRATION_FILE,
        PERTURBATIONS,
        audit_reward,
        load_pair_sets,
        record_evaluation,
        reward_report_html,
        write_reward_report,
    )
    from tutelage.store import open_store
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
    unknown = [p for p in perturbations or [] if p not in PERTURBATIONS]
    if unknown:
        raise typer.BadParameter(
            f"no perturbation named {', '.join(unknown)}; known: {', '.join(PERTURBATIONS)}",
            param_hint="--perturbation",
        )
    actor = f"cli:{getpass.getuser()}"
    sets = load_pair_sets(data, db=db, split=split, override=override, actor=actor)
    with steps("loading the reward model", status) as say:
        audits = audit_reward(
            model,
            sets,
            robustness=robustness,
            perturbations=perturbations,
            robustness_sample=robustness_sample or None,
            max_length=max_length,
            fit_temperature=fit_temperature,
            progress=say,
        )
    settings = {
        "split": split,
        "max_length": max_length,
        "robustness": robustness,
        "robustness_sample": robustness_sample or None,
        "perturbations": list(perturbations or (PERTURBATIONS if robustness else [])),
        "temperature": audits[0].calibrated.temperature if audits[0].calibrated else None,
    }
    results = {"data": [a.summary() for a in audits]}
    report = None
    if out is not None:
        _, report = write_reward_report(out, str(model), audits, {"settings": settings})
    store = open_store(db)
    try:
        evaluation = record_evaluation(
            store,
            kind="reward",
            model_dir=model,
            data=[{"source": s.source, "hash": s.hash, "n": len(s.pairs)} for s in sets],
            settings=settings,
            results=results,
            report_html=(
                report.read_text(encoding="utf-8")
                if report is not None
                else reward_report_html(str(model), audits)
            ),
            actor=actor,
        )
    finally:
        store.close()
    if as_json:
        found = [{**a.summary(), "evaluation": evaluation} for a in audits]
        typer.echo(json.dumps(found[0] if len(found) == 1 else found))
        return
    fit = audits[0].temperature_fit
    if fit is not None:
        _say(
            f"temperature {fit.temperature:.3f} fitted on {fit.fitted_pairs:,} pairs of "
            f"{fit.source}; on its other {fit.measured_pairs:,} pairs (other prompts) ECE "
            f"{fit.ece_before:.3f} -> {fit.ece_after:.3f}; saved to {model / CALIBRATION_FILE}"
        )
    for audit in audits:
        _describe(audit)
    where = f"; report: {report}" if report is not None else ""
    _say(f"recorded as evaluation {evaluation}{where}")


def _rate_line(name: str, rates: dict[str, FormRate]) -> str:
    parts = []
    for form, rate in rates.items():
        interval = (
            f" ({rate.low:.1%} to {rate.high:.1%})"
            if rate.low is not None and rate.high is not None
            else ""
        )
        parts.append(f"{form} {rate.rate:.1%}{interval}, n={rate.n}")
    return f"{name}: " + "; ".join(parts)


@eval_app.command("policy")
def eval_policy_command(
    model: Annotated[
        str, typer.Argument(help="A training run or transformers folder, or a bundled model.")
    ],
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="The model it started from, to compare with."),
    ] = None,
    suites: Annotated[
        list[str] | None,
        typer.Option(
            "--suite",
            help="A bundled suite (opinion, answer, are-you-sure, facts) or a suite file; "
            "repeat for more [default: opinion, answer, are-you-sure].",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Only the first N items of each suite (and of --prompts)."
        ),
    ] = None,
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts",
            help="Open questions (a chat or pairs file) both models answer, greedily.",
        ),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option("--judge", help="A reward model that says whose answer is better."),
    ] = None,
    to_project: Annotated[
        str | None,
        typer.Option(
            "--to-project", help="A new project: the two answers as blinded comparison items."
        ),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 128,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for report.json and report.html (with plots)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    db: DbOption = None,
) -> None:
    """Audit a policy for sycophancy in three forms (the user's opinion, a suggested
    wrong answer, "are you sure?"), beside its reference; kept in the store."""
    from dataclasses import replace

    from tutelage.cli.progress import steps
    from tutelage.cli.train import quiet_transformers
    from tutelage.evaluation import audit_policy, load_suite, record_evaluation
    from tutelage.evaluation.head_to_head import answer_prompts, read_prompts, win_rate
    from tutelage.evaluation.head_to_head import to_project as to_project_items
    from tutelage.evaluation.policy_report import policy_report_html, write_policy_report
    from tutelage.generation.bundled import bundled_names, model_path
    from tutelage.store import open_store

    quiet_transformers()
    if (judge is not None or to_project is not None) and (prompts is None or reference is None):
        raise typer.BadParameter(
            "--judge and --to-project compare answers to --prompts with the --reference's",
            param_hint="--prompts",
        )
    if prompts is not None and judge is None and to_project is None:
        raise typer.BadParameter(
            "the answers to --prompts go to a --judge or --to-project; give one",
            param_hint="--prompts",
        )
    if to_project is not None:
        _refuse_taken_project(to_project, db)
    loaded = [load_suite(ref) for ref in suites or ["opinion", "answer", "are-you-sure"]]
    if limit is not None:
        loaded = [replace(s, items=s.items[:limit]) for s in loaded]
    asked = read_prompts(prompts, limit) if prompts is not None else []
    with steps("loading the policy", status) as say:
        audit = audit_policy(model, loaded, reference=reference, progress=say)
        summary = audit.summary()
        if asked and reference is not None and (judge is not None or to_project is not None):
            say(f"{model}: answering {len(asked):,} prompts")
            ours = answer_prompts(model, asked, max_new_tokens=max_new_tokens)
            say(f"{reference}: answering {len(asked):,} prompts")
            theirs = answer_prompts(reference, asked, max_new_tokens=max_new_tokens)
            if judge is not None:
                say(f"judging {len(asked):,} pairs of answers")
                summary["win_rate"] = win_rate(judge, asked, ours, theirs).summary()
    items = None
    if to_project is not None:
        store = open_store(db)
        try:
            items = to_project_items(
                store,
                name=to_project,
                prompts=asked,
                ours=ours,
                theirs=theirs,
                instructions=HEAD_TO_HEAD,
            )
        finally:
            store.close()
        summary["to_project"] = {"project": to_project, "items": items}
    report = None
    if out is not None:
        _, report = write_policy_report(out, audit, summary)
    folder = model_path(model) if model in bundled_names() else Path(model)
    store = open_store(db)
    try:
        evaluation = record_evaluation(
            store,
            kind="policy",
            model_dir=folder,
            data=[{"source": s.name, "hash": s.sha256, "n": len(s.items)} for s in loaded],
            settings={
                "reference": reference,
                "limit": limit,
                "prompts": str(prompts) if prompts is not None else None,
                "judge": judge,
                "max_new_tokens": max_new_tokens,
            },
            results=summary,
            report_html=(
                report.read_text(encoding="utf-8")
                if report is not None
                else policy_report_html(audit, summary.get("win_rate"))
            ),
            actor=f"cli:{getpass.getuser()}",
        )
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({**summary, "evaluation": evaluation}))
        return
    _say(_rate_line(model, audit.rates))
    if audit.reference_rates is not None and reference is not None:
        _say(_rate_line(reference, audit.reference_rates))
        for form, rate in audit.rates.items():
            if rate.difference is not None and rate.p_value is not None:
                _say(
                    f"  {form}: {rate.difference:+.1%} against the reference "
                    f"(p = {rate.p_value:.3g})"
                )
    opinion = audit.rates.get("opinion")
    if opinion is not None and opinion.baseline is not None:
        _say(
            "  (a model the user's view does not move agrees with it "
            f"{opinion.baseline:.0%} of the time on these items)"
        )
    win = summary.get("win_rate")
    if win is not None:
        _say(
            f"  wins against the reference on {win['rate']:.1%} of {win['n']} prompts "
            f"(95% interval {_percent(win['low'])} to {_percent(win['high'])}), judged by {judge}"
        )
    if items is not None:
        _say(f"  {items} blinded comparison items for the experts in project {to_project!r}")
    where = f"; report: {report}" if report is not None else ""
    _say(f"recorded as evaluation {evaluation}{where}")


HEAD_TO_HEAD = (
    "Two models answered each question. Choose the better answer: more helpful, correct "
    "and honest. The order of the answers is random."
)


def _refuse_taken_project(name: str, db: str | None) -> None:
    from sqlalchemy import select

    from tutelage.store import open_store
    from tutelage.store.tables import ProjectRow

    store = open_store(db)
    try:
        with store.read_session() as session:
            taken = session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
    finally:
        store.close()
    if taken is not None:
        raise typer.BadParameter(
            f"a project named {name!r} exists already", param_hint="--to-project"
        )


@eval_app.command("judge")
def eval_judge_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project name.")],
    judge: Annotated[
        str,
        typer.Option("--judge", help="A reward-model folder, or an OpenAI-compatible URL#model."),
    ],
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N items.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    db: DbOption = None,
) -> None:
    """How often a judge agrees with the experts' consensus, its position bias, and the
    experts' own agreement beside it; kept in the store."""
    from tutelage.cli.progress import steps
    from tutelage.cli.train import quiet_transformers
    from tutelage.evaluation import record_evaluation
    from tutelage.evaluation.judge import audit_judge, open_judge, project_pairs
    from tutelage.store import open_store

    quiet_transformers()
    store = open_store(db)
    try:
        with steps("reading the experts' consensus", status) as say:
            pairs, experts = project_pairs(store, project)
            pairs = pairs[:limit] if limit is not None else pairs
            say("loading the judge")
            found = audit_judge(
                open_judge(judge), pairs, project=project, experts=experts, progress=say
            )
        evaluation = record_evaluation(
            store,
            kind="judge",
            model_dir=judge,
            data=[{"source": f"project {project}", "hash": None, "n": found.n}],
            settings={"limit": limit},
            results=found.summary(),
            report_html=None,
            actor=f"cli:{getpass.getuser()}",
        )
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({**found.summary(), "evaluation": evaluation}))
        return
    kappa = f"{found.kappa:.3f}" if found.kappa is not None else "undefined"
    _say(
        f"{found.n:,} items of {project} with a decisive consensus: the judge agrees "
        f"with it on {found.agreement:.1%} (ties half), Cohen's kappa {kappa}"
    )
    _say(
        f"  position bias: the same verdict in both orders on {found.consistent:.1%} of "
        f"pairs; the answer shown first wins {found.first_preference:.1%} of its verdicts"
    )
    alpha = experts.get("krippendorff_alpha")
    mean = experts.get("mean_agreement_with_consensus")
    _say(
        "  the experts: Krippendorff's alpha "
        + (f"{alpha:.3f}" if alpha is not None else f"undefined ({experts.get('alpha_note')})")
        + (f", each agrees with the consensus {mean:.1%} on average" if mean is not None else "")
    )
    _say(f"recorded as evaluation {evaluation}")
