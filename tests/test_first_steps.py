"""The path a new user walks first, through the real command, on SQLite and PostgreSQL:
the README's first-steps block run as written on imported pairs, and the same commands
on a project whose imported pairs experts also judged.

The commands run through `tutelage.cli.main`, the entry point of the installed command,
in this process, from the user's folder and with TUTELAGE_DB set, as typed: a second of
interpreter and torch start-up per command would double the test's time. (The demo test
in test_cli.py starts the real executable.)"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from quality_fixtures import judge
from tutelage.store import open_store
from tutelage.store.workspace_tables import ItemRow
from workspace_fixtures import make_world

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- first-steps"
# The only change made to the README's commands: training stops after two steps,
# training and scoring cut sequences to 128 tokens, and the audit tries two of its
# perturbations on 40 pairs (the whole run takes minutes; that it trains to a good model, and
# that the audit finds what it should, is tested elsewhere).
_SHORT = ["--max-length", "128"]
SHORTER = {
    ("train", "reward"): ["--max-steps", "2", *_SHORT],
    ("train", "dpo"): ["--max-steps", "2", *_SHORT],
    ("eval", "reward"): [
        *_SHORT,
        *("--perturbation", "flattering_close", "--perturbation", "duplicated"),
        *("--robustness-sample", "40"),
    ],
}


def first_steps() -> list[tuple[list[str], int]]:
    """Each command of the README's first-steps blocks, with the exit code it says it has."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(MARKER + r"[^\n]*-->\n```bash\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README has no first-steps block"
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition("#")
            if not command.strip():
                continue
            expected = re.match(r"\s*exits (\d+)", comment)
            commands.append((shlex.split(command), int(expected.group(1)) if expected else 0))
    return commands


Tutelage = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def tutelage(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Tutelage:
    """`tutelage ARGS` as a user runs it in their folder (`tmp_path / "work"`), checked to
    end as expected (None: passes or fails on the data's merits, 0 or 1)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TUTELAGE_DB", store_url)

    def run(args: list[str], expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = cli(*args)
        words = " ".join(args)
        expected = (0, 1) if expect is None else (expect,)
        assert result.returncode in expected, (
            f"tutelage {words}: {result.returncode}\n{result.stderr}"
        )
        return result

    return run


def test_the_readme_first_steps_run_as_written(
    tmp_path: Path, hh_rlhf: Path, tutelage: Tutelage
) -> None:
    work = tmp_path / "work"
    ran = []
    for words, expect in first_steps():
        assert words[0] == "tutelage", words
        args = [str(hh_rlhf) if w.startswith("../shared/") else w for w in words[1:]]
        args += SHORTER.get(tuple(args[:2]), [])  # type: ignore[arg-type]
        tutelage(args, expect=expect)
        ran.append(" ".join(words[1:3]))
    # The block covers the loop from imported pairs to a trained, evaluated model.
    for step in ("import", "quality report", "snapshot", "check", "card", "train reward"):
        assert any(r.startswith(step) for r in ran), f"the first steps lack {step}"
    assert any(r.startswith("eval reward") for r in ran)

    # Every imported pair is a unit with its source's label: nothing was left out.
    report = json.loads((work / "quality" / "report.json").read_text(encoding="utf-8"))
    assert report["judgments"]["pairs_without_item"] == 2352
    assert report["judgments"]["left_out"] == {}
    assert report["stored_consensus_labels"] == 2352
    assert report["agreement"]["overall"]["outcome_alpha"]["value"] is None
    assert "two or more judgments" in report["agreement"]["overall"]["outcome_alpha"]["note"]
    assert {(c["label"], c["confidence"]) for c in report["consensus"]} == {("a", 1.0)}
    # The version holds the source's preferences: chosen is HH-RLHF's chosen answer.
    show = tutelage(["datasets", "show", "gov-v1", "--json"])
    manifest = json.loads(show.stdout)
    assert sum(manifest["counts"]["by_split"].values()) == 2352
    assert manifest["judges"]["named_sources"] == ["hh-rlhf"]
    assert (work / "gov-v1-card" / "card.html").is_file()
    assert (work / "runs" / "rm-gov" / "config.json").is_file()
    assert len((work / "gov.jsonl").read_text(encoding="utf-8").splitlines()) == 2352
    # The audit: a temperature saved with the model, a report, evaluations kept.
    assert (work / "runs" / "rm-gov" / "calibration.json").is_file()
    audit = json.loads((work / "audit" / "report.json").read_text(encoding="utf-8"))
    (figures,) = audit["data"]
    assert figures["source"] == "split 'test' of dataset version gov-v1"
    assert figures["temperature_fit"]["measured_pairs"] > 0
    assert set(figures["robustness"]) == {"flattering_close", "duplicated"}
    assert (work / "audit" / "report.html").is_file()


def test_imported_pairs_that_experts_also_judged_go_the_same_way(
    store_url: str, tmp_path: Path, tutelage: Tutelage
) -> None:
    store = open_store(store_url)
    world = make_world(store, tmp_path, pairs=12, experts=2)
    with store.session() as session:
        items = {i.id: i for i in session.query(ItemRow).filter_by(project_id=world.project_id)}
    # The experts agree with the imported label (the first answer) but on two items.
    canonical = {item: "a" for item in items}
    for item in list(items)[:2]:
        canonical[item] = "b"
    judge(world, 0, canonical)
    judge(world, 1, canonical)
    store.close()

    report = json.loads(tutelage(["quality", "report", "--project", "cardio", "--json"]).stdout)
    assert report["judgments"]["items"] == 12 and report["judgments"]["pairs_without_item"] == 0
    assert report["judgments"]["comparisons"] == 36  # two experts and the source, per item
    assert report["agreement"]["overall"]["outcome_alpha"]["value"] is not None
    labels = {c["item"]: c["label"] for c in report["consensus"]}
    assert all(labels[item] == canonical[item] for item in items)  # two experts outvote it

    steps = [
        (["snapshot", "--project", "cardio", "--name", "mixed", "--split", "0.5", "0", "0.5"], 0),
        (["check", "mixed"], None),
        (["card", "mixed", "--out", "card"], 0),
        # Training and evaluating a version is the same path as in the test above.
        (["export", "--project", "cardio", "--format", "trl", "--out", "out.jsonl"], 0),
    ]
    for args, expect in steps:
        tutelage(args, expect=expect)
    shown = tutelage(["datasets", "show", "mixed", "--json"])
    manifest = json.loads(shown.stdout)
    assert sum(manifest["counts"]["by_split"].values()) == 12
    assert manifest["judges"]["experts"] == 2 and manifest["judges"]["named_sources"] == ["seed"]
