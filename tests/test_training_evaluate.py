"""Reward-model evaluation: hand-worked accuracy, length baseline and margin; the CLI on
a tiny model trained on a planted rule."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutelage.cli import app
from tutelage.evaluation import (
    PERTURBATIONS,
    list_evaluations,
    model_fingerprint,
    saved_temperature,
)
from tutelage.store import open_store
from tutelage.training import PreferenceData, RewardConfig, TrainingPair, train_reward
from tutelage.training import evaluate as evaluate_module
from tutelage.training.evaluate import RewardEvaluation, evaluate_scores


def pair(chosen: str, rejected: str) -> TrainingPair:
    return TrainingPair(prompt="user: hi", chosen=chosen, rejected=rejected)


def test_evaluate_scores_against_hand_worked_numbers() -> None:
    pairs = [
        pair("aaaa", "bb"),  # longer chosen: baseline 1
        pair("a", "bbb"),  # shorter chosen: baseline 0
        pair("cc", "dd"),  # equal lengths: baseline 0.5
        pair("eeeee", "f"),  # longer chosen: baseline 1
    ]
    scores = [(2.0, 1.0), (0.5, 0.5), (-1.0, 0.0), (-0.5, 0.25)]
    # model: win, tie (half), loss, loss = 1.5 / 4; margins 1 + 0 - 1 - 0.75 = -0.75
    assert evaluate_scores(pairs, scores) == RewardEvaluation(
        n=4, accuracy=0.375, length_baseline_accuracy=0.625, mean_margin=-0.1875, ties=1
    )
    assert not evaluate_scores(pairs, scores).beats_length_baseline
    perfect = evaluate_scores(pairs, [(1.0, 0.0)] * 4)
    assert perfect.accuracy == 1.0 and perfect.mean_margin == 1.0 and perfect.ties == 0
    assert perfect.beats_length_baseline


def test_evaluate_scores_refuses_no_pairs_or_mismatched_scores() -> None:
    with pytest.raises(ValueError, match="no preference pairs"):
        evaluate_scores([], [])
    with pytest.raises(ValueError, match="1 scores for 2 pairs"):
        evaluate_scores([pair("a", "b"), pair("c", "d")], [(1.0, 0.0)])


def test_public_names() -> None:
    assert sorted(evaluate_module.__all__) == [
        "RewardEvaluation",
        "evaluate_reward",
        "evaluate_scores",
    ]
    for name in evaluate_module.__all__:
        assert hasattr(evaluate_module, name)


TRAIN_TOPICS = ["tea", "rain", "trains", "maps", "bread", "chess", "boats", "rivers"]
HELD_OUT_TOPICS = ["owls", "cheese", "kites", "violins", "glaciers", "tulips"]


def planted_pairs(topics: list[str], repeats: int) -> list[TrainingPair]:
    """Chosen answers are short and polite, rejected ones longer and rude: the length
    baseline is always wrong, so only the planted rule beats it."""
    return [
        TrainingPair(
            prompt=f"user: Tell me something about {topic}, please ({i}).",
            chosen=f"Thank you for asking! Happy to help: {topic} are lovely.",
            rejected=f"No. Go away, {topic} is a stupid question and I will not answer it, ever.",
        )
        for i in range(repeats)
        for topic in topics
    ]


def write_pairs(path: Path, pairs: list[TrainingPair]) -> Path:
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_eval_reward_command_on_a_model_that_learned_a_planted_rule(tmp_path: Path) -> None:
    model = tmp_path / "rm"
    config = RewardConfig(out=model, max_steps=12, batch_size=4, max_length=64, lr=3e-4)
    train = PreferenceData(pairs=planted_pairs(TRAIN_TOPICS, 2), source="planted")
    train_reward(config, train, progress=False)
    held_out = write_pairs(tmp_path / "held-out.jsonl", planted_pairs(HELD_OUT_TOPICS, 1))

    db = f"sqlite:///{tmp_path / 'store.db'}"
    runner = CliRunner()
    command = ["eval", "reward", str(model), "--max-length", "64", "--db", db]
    result = runner.invoke(app, [*command, "--data", str(held_out), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # exactly one JSON object, nothing else
    assert {"n", "accuracy", "length_baseline_accuracy", "mean_margin"} <= set(figures)
    assert figures["n"] == len(HELD_OUT_TOPICS)
    assert figures["length_baseline_accuracy"] == 0.0
    assert figures["accuracy"] > figures["length_baseline_accuracy"]
    assert figures["accuracy"] >= 5 / 6 and figures["mean_margin"] > 0
    assert set(figures["calibration"]) == {"ece", "ece_equal_mass", "brier"}
    assert {"reward_length_spearman", "accuracy_chosen_shorter"} <= set(figures["length"])
    # every chosen answer here is the shorter one
    assert figures["length"]["accuracy_chosen_shorter"] == figures["accuracy"]
    assert set(figures["robustness"]) == set(PERTURBATIONS)

    # two data sets side by side: a list, a report, and one evaluation kept in the store
    other = write_pairs(tmp_path / "other.jsonl", planted_pairs(["lamps", "moss"], 2))
    out = tmp_path / "report"
    summary = runner.invoke(
        app, [*command, "--data", str(held_out), "--data", str(other), "--out", str(out)]
    )
    assert summary.exit_code == 0, summary.output
    assert f"{len(HELD_OUT_TOPICS)} pairs from {held_out}" in summary.stdout
    assert f"4 pairs from {other}" in summary.stdout
    assert "longer answer wins 0.0%" in summary.stdout
    assert "beats the length baseline" in summary.stdout
    assert "only 6 pairs: a weak verdict" in summary.stdout
    assert "correct verdicts flipped by: flattering_close" in summary.stdout
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [d["source"] for d in report["data"]] == [str(held_out), str(other)]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4 and "http" not in page
    store = open_store(db)
    try:
        with store.session() as session:
            kept = list_evaluations(session)
    finally:
        store.close()
    assert [e.kind for e in kept] == ["reward", "reward"]
    assert kept[0].data[1]["n"] == 4 and kept[0].report_html == page
    assert kept[0].model_hash == kept[1].model_hash == model_fingerprint(model)
    assert kept[0].results["data"][0]["accuracy"] == figures["accuracy"]
    assert f"recorded as evaluation {kept[0].id}; report: {out / 'report.html'}" in summary.stdout

    # a temperature fitted on half the prompts, saved, then used by `score`
    fitted = runner.invoke(
        app, [*command, "--data", str(other), "--fit-temperature", "--no-robustness"]
    )
    assert fitted.exit_code == 0, fitted.output
    assert "fitted on 2 pairs of" in fitted.stdout and "saved to" in fitted.stdout
    temperature = saved_temperature(model)
    assert temperature is not None
    rewards = tmp_path / "rewards.jsonl"
    scored = runner.invoke(app, ["score", str(model), "--data", str(other), "--out", str(rewards)])
    assert scored.exit_code == 0, scored.output
    assert f"calibrated with the temperature {temperature:.3f}" in scored.stdout
    rows = [json.loads(line) for line in rewards.read_text(encoding="utf-8").splitlines()]
    chosen, rejected = rows[0], rows[1]
    margin = (chosen["reward"] - rejected["reward"]) / temperature
    assert chosen["probability_preferred"] == pytest.approx(1 / (1 + math.exp(-margin)))
    assert chosen["probability_preferred"] + rejected["probability_preferred"] == pytest.approx(1)


def test_eval_reward_command_says_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths keep the error box to one line
    write_pairs(tmp_path / "pairs.jsonl", planted_pairs(["owls"], 1))
    missing = CliRunner().invoke(app, ["eval", "reward", "nope", "--data", "pairs.jsonl"])
    assert missing.exit_code == 2
    assert "no model folder at nope" in missing.output

    fake_model = tmp_path / "fake-model"
    fake_model.mkdir()
    (fake_model / "config.json").write_text("{}", encoding="utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    command = [sys.executable, "-m", "tutelage", "eval", "reward", str(fake_model)]
    refused = subprocess.run([*command, "--data", str(empty)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [f"error: {empty}: no records"]

    not_a_model = subprocess.run(
        [*command, "--data", "pairs.jsonl", "--db", f"sqlite:///{tmp_path / 'store.db'}"],
        capture_output=True,
        text=True,
    )
    assert not_a_model.returncode == 1
    (line,) = not_a_model.stderr.strip().splitlines()
    assert line.startswith(f"error: {fake_model} is not a reward model tutelage can load: ")
    assert not (tmp_path / "store.db").exists()  # nothing recorded

    unknown = CliRunner().invoke(
        app, ["eval", "reward", str(fake_model), "--data", "pairs.jsonl", "--perturbation", "nope"]
    )
    assert unknown.exit_code == 2
    assert "no perturbation named nope" in unknown.output
