"""`tutelage snapshot`, `tutelage datasets ...` and `tutelage card` as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quality_fixtures import item_ids, judge
from tutelage.quality.persist import analyse_project
from tutelage.store import open_store
from workspace_fixtures import make_world


@pytest.fixture
def seeded(tmp_path: Path) -> str:
    """A SQLite store with project 'cardio': six pairs judged by three experts, one tie."""
    url = f"sqlite:///{tmp_path / 'datasets.db'}"
    store = open_store(url)
    world = make_world(store, tmp_path, pairs=6, experts=3)
    truth = {item: "tie" if n == 0 else "a" for n, item in enumerate(item_ids(world))}
    for expert in range(3):
        judge(world, expert, truth)
    analyse_project(store, project="cardio", bootstrap=0)
    store.close()
    return url


def test_snapshot_list_show_diff_gate_and_card(
    seeded: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    made = cli("snapshot", "--project", "cardio", "--name", "v1", "--json", "--db", seeded)
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    assert manifest["name"] == "v1" and len(manifest["hash"]) == 64
    assert manifest["counts"]["records"] == 5 and manifest["counts"]["left_out"] == {"tie": 1}

    again = cli(
        "snapshot", "--project", "cardio", "--name", "v2", "--seed", "3",
        "--split", "0.5", "0.25", "0.25", "--db", seeded,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "version 'v2' (preference)" in again.stdout

    reused = cli("snapshot", "--project", "cardio", "--name", "v1", "--db", seeded)
    assert reused.returncode == 1 and "exists already" in reused.stderr

    listed = json.loads(cli("datasets", "list", "--json", "--db", seeded).stdout)
    assert [v["name"] for v in listed] == ["v1", "v2"] and listed[1]["parent"] == "v1"

    shown = json.loads(cli("datasets", "show", "v1", "--json", "--db", seeded).stdout)
    assert shown["hash"] == manifest["hash"] and shown["events"] == []

    diff = json.loads(cli("datasets", "diff", "v1", "v2", "--json", "--db", seeded).stdout)
    assert diff["counts"]["added"] == 0 and diff["counts"]["removed"] == 0
    assert diff["counts"]["changed"] + diff["counts"]["unchanged"] == 5

    refused = cli("datasets", "gate", "v1", "--db", seeded)
    assert refused.returncode == 1
    assert "has not been checked" in refused.stderr and '--override "reason"' in refused.stderr
    allowed = cli(
        "datasets", "gate", "v1", "--override", "pilot run", "--by", "lead", "--db", seeded
    )
    assert allowed.returncode == 0, allowed.stderr
    history = json.loads(cli("datasets", "show", "v1", "--json", "--db", seeded).stdout)["events"]
    assert history[0]["kind"] == "override" and history[0]["details"]["reason"] == "pilot run"

    out = tmp_path / "card"
    card = cli("card", "v1", "--out", str(out), "--db", seeded)
    assert card.returncode == 0, card.stderr
    page = (out / "card.html").read_text()
    assert "data:image/png;base64," in page and "pilot run" in page
    assert "http://" not in page and "https://" not in page
    markdown = (out / "card.md").read_text()
    for section in ("Motivation", "Composition", "Collection process", "Licence and consent"):
        assert f"## {section}" in markdown
    assert "expert0@example.org" not in markdown and "expert0@example.org" not in page


def test_bad_arguments_print_one_clear_line(seeded: str, cli: Callable[..., Any]) -> None:
    bad = cli("snapshot", "--project", "cardio", "--name", "x", "--split", "0.9", "0.9", "0.1",
              "--db", seeded)  # fmt: skip
    assert bad.returncode == 1 and "sum to 1" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli("datasets", "show", "nope", "--db", seeded)
    assert missing.returncode == 1 and "no dataset version named 'nope'" in missing.stderr
