"""The simulation: real pairs, simulated experts, a real store, the real quality code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from tutelage.quality.load import load_judgments
from tutelage.quality.simulate import (
    SimulationConfig,
    SimulationError,
    read_pairs,
    write_simulation,
)
from tutelage.store import Store
from tutelage.store.tables import ComparisonRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow
from workspace_fixtures import pairs_file


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tutelage", "quality", "simulate", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=1200,  # generous: a machine four times slower still finishes
    )


def plain(stderr: str) -> str:
    """Click's error box without its frame and line breaks."""
    return " ".join(line.strip("│╭╮╰╯─ ") for line in stderr.splitlines())


def test_simulate_json_prints_accuracy_and_detection(tmp_path: Path) -> None:
    pairs = pairs_file(tmp_path, 200)
    result = simulate(
        "--pairs", str(pairs), "--experts", "12", "--overlap", "3", "--adversarial", "0.25",
        "--seed", "3", "--bootstrap", "20", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for group, keys in (("consensus_accuracy", {"majority", "dawid_skene"}),
                        ("detection", {"precision", "recall"})):  # fmt: skip
        assert keys <= set(figures[group])
        assert all(0.0 <= figures[group][key] <= 1.0 for key in keys)
    assert figures["items"] == 200 - 8  # eight pairs became gold items
    assert figures["bad_experts"] == 3 + 1  # 25% adversarial, 10% careless of 12
    assert figures["judgments"] == 192 * 3 + 8 * 12


def test_simulated_judgments_are_stored_as_the_workspace_stores_them(
    store: Store, hh_rlhf: Path
) -> None:
    pairs = read_pairs(hh_rlhf, limit=300)
    config = SimulationConfig(experts=10, overlap=3, adversarial=0.2, careless=0.3, seed=5)
    with store.session() as session:
        simulated = write_simulation(session, name="sim", pairs=pairs, config=config)
    with store.session() as session:
        counted = session.scalar(
            select(func.count(ComparisonRow.id)).where(ComparisonRow.expert_id.is_not(None))
        )
        unlinked = session.scalar(
            select(func.count(AssignmentRow.id)).where(AssignmentRow.judgment_id.is_(None))
        )
        gold = session.scalars(select(ItemRow).where(ItemRow.purpose == "gold")).all()
        loaded = load_judgments(session, project_id=simulated.project_id)
    assert counted == simulated.judgments == 292 * 3 + 8 * 10 and unlinked == 0
    assert all(item.gold_answer["winner"] in item.completion_ids for item in gold)
    # The truth is "a" about half the time: canonical order is random per pair.
    assert 0.35 < np.mean([label == "a" for label in simulated.truth.values()]) < 0.65
    frame = loaded.comparisons.assign(
        kind=loaded.comparisons["worker"].map(lambda w: simulated.workers[w].kind),
        right=loaded.comparisons["label"] == loaded.comparisons["item"].map(simulated.truth),
    )
    assert 0.35 < frame["swapped"].mean() < 0.65  # shown order is random per assignment
    # Read back through the store, each kind behaves as designed.
    always_a = frame[frame["kind"] == "always_a"]
    assert ((always_a["label"] == "a") != always_a["swapped"]).mean() > 0.9  # A as shown
    good = frame[frame["kind"] == "good"]
    assert good["right"].mean() > 0.75
    assert frame.loc[frame["kind"] == "adversarial", "right"].mean() < 0.4
    assert frame.loc[frame["kind"] == "too_fast", "active_seconds"].median() < 10
    answered = {w: g for w, g in loaded.gold.items() if simulated.workers[w].kind == "adversarial"}
    assert answered and all(total == 8 for total, _ in answered.values())


def test_impossible_settings_are_refused_with_the_reason(tmp_path: Path) -> None:
    pairs = pairs_file(tmp_path, 20)
    result = simulate("--pairs", str(pairs), "--experts", "3", "--overlap", "5")
    assert result.returncode == 2 and "--overlap must be between 1 and --experts" in plain(
        result.stderr
    )
    result = simulate("--pairs", str(pairs), "--adversarial", "0.95")
    assert result.returncode == 2 and "together exceed all experts" in plain(result.stderr)
    missing = simulate("--pairs", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    with pytest.raises(SimulationError, match="too few"):
        write_simulation(
            None,  # type: ignore[arg-type]  (refused before the store is touched)
            name="x",
            pairs=read_pairs(pairs, limit=5),
            config=SimulationConfig(),
        )
