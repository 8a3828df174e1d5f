"""`tutelage quality ...` as a user runs it: the report, exclusions and adjudication."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from quality_fixtures import judge
from tutelage.store import open_store
from tutelage.store.quality_tables import ConsensusLabelRow
from tutelage.store.tables import UserRow
from tutelage.store.workspace_tables import AuditRow, ItemRow
from tutelage.workspace.accounts import create_user
from workspace_fixtures import PASSWORD, make_world

MARKUP = "<img src=x onerror=alert(1)>"
REPORT_KEYS = {"project", "agreement", "consensus", "consensus_summary", "experts", "flags"}


@pytest.fixture
def seeded(tmp_path: Path) -> str:
    """A SQLite store with project 'cardio': six pairs judged by four experts, one contrary."""
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    store = open_store(url)
    world = make_world(store, tmp_path, pairs=6, experts=4, overlap=4)
    with store.session() as session:
        items = list(session.scalars(select(ItemRow.id).order_by(ItemRow.id)))
        create_user(
            session, email="rev@example.org", password=PASSWORD, handle="rev", role="reviewer"
        )
    truth = {item: "a" if n % 2 else "b" for n, item in enumerate(items)}
    for expert in range(3):
        judge(world, expert, truth, rationale="checked the dose")
    judge(world, 3, {item: "b" if label == "a" else "a" for item, label in truth.items()})
    store.close()
    return url


def test_report_json_has_every_part_and_the_folder_has_page_data_and_charts(
    seeded: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    result = cli(
        "quality", "report", "--project", "cardio", "--json", "--bootstrap", "50", "--db", seeded
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= REPORT_KEYS
    assert report["judgments"]["comparisons"] == 6 * 4 + 6  # experts' and the imported ones
    assert report["names"]["expert:2"] == "expert0"
    assert {"outcome_alpha", "fleiss_kappa"} <= set(report["agreement"]["overall"])
    assert report["consensus_summary"]["method"] == "dawid_skene"
    assert report["stored_consensus_labels"] == 6

    store = open_store(seeded)  # a handle is text people chose: it must stay text
    with store.session() as session:
        session.execute(update(UserRow).where(UserRow.handle == "expert3").values(handle=MARKUP))
    store.close()
    out = tmp_path / "report"
    written = cli("quality", "report", "--project", "cardio", "--out", str(out), "--db", seeded)
    assert written.returncode == 0, written.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Quality of project cardio" in page and "expert2" in page
    assert MARKUP not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
    charts = sorted(out.glob("*.png"))
    assert charts and all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in charts)
    assert all(f'src="{p.name}"' in page for p in charts)
    assert set(json.loads((out / "report.json").read_text(encoding="utf-8"))) >= REPORT_KEYS
    assert "Agreement" in written.stdout and "Experts" in written.stdout


def test_exclude_include_and_adjudicate_through_the_command(
    seeded: str, cli: Callable[..., Any]
) -> None:
    excluded = cli("quality",
        "exclude", "--project", "cardio", "--expert", "expert3@example.org",
        "--reason", "contrary on every item", "--db", seeded,
    )  # fmt: skip
    assert excluded.returncode == 0, excluded.stderr
    report = json.loads(
        cli(
            "quality", "report", "--project", "cardio", "--json", "--bootstrap", "0", "--db", seeded
        ).stdout
    )
    assert report["judgments"]["excluded"] == ["expert:5"]
    assert {e["worker"]: e["excluded"] for e in report["experts"]}["expert:5"] is True

    again = cli("quality",
        "exclude", "--project", "cardio", "--expert", "expert3@example.org", "--reason", "x",
        "--db", seeded,
    )  # fmt: skip
    assert again.returncode == 1 and "excluded from project 'cardio' already" in again.stderr
    included = cli("quality", "include", "--project", "cardio", "--expert", "expert3@example.org",
                   "--db", seeded)  # fmt: skip
    assert included.returncode == 0, included.stderr

    first = cli("quality",
        "adjudicate", "--project", "cardio", "--item", "1", "--label", "tie",
        "--reviewer", "rev@example.org", "--note", "equally good", "--db", seeded,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = cli("quality",
        "adjudicate", "--project", "cardio", "--item", "1", "--label", "a",
        "--reviewer", "rev@example.org", "--db", seeded,
    )  # fmt: skip
    assert second.returncode == 1
    assert "adjudicated already" in second.stderr and "Traceback" not in second.stderr
    by_expert = cli("quality",
        "adjudicate", "--project", "cardio", "--item", "2", "--label", "a",
        "--reviewer", "expert0@example.org", "--db", seeded,
    )  # fmt: skip
    assert by_expert.returncode == 1 and "reviewer" in by_expert.stderr
    unknown = cli("quality",
        "exclude", "--project", "cardio", "--expert", "nobody@example.org", "--reason", "x",
        "--db", seeded,
    )  # fmt: skip
    assert unknown.returncode == 1 and "nobody@example.org" in unknown.stderr

    store = open_store(seeded)
    with store.session() as session:
        actions = session.scalars(
            select(AuditRow.action).where(AuditRow.action.like("quality.%")).order_by(AuditRow.id)
        ).all()
        stored = session.scalar(select(ConsensusLabelRow).where(ConsensusLabelRow.item_id == 1))
    store.close()
    assert actions == ["quality.exclude", "quality.include", "quality.adjudicate"]
    assert stored is not None and (stored.label, stored.method) == ("tie", "adjudication")


def test_the_demo_project_reports_the_simulated_experts_agreement(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = cli("demo", "--no-generate", "--no-serve", "--db", db)
    assert demo.returncode == 0, demo.stderr
    result = cli(
        "quality", "report", "--project", "demo", "--json", "--out", str(tmp_path / "r"), "--db", db
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Without generated answers the demo has 8 comparison items, each judged by the five
    # simulated experts and the imported samples (test_cli checks the full demo's flags).
    assert report["judgments"]["items"] == 8 and report["judgments"]["workers"] == 6
    assert report["agreement"]["overall"]["outcome_alpha"]["value"] is not None
    assert report["method"] == "majority" and len(report["consensus"]) == 8
    fast = {report["names"][f["worker"]] for f in report["flags"] if f["kind"] == "too_fast"}
    assert fast == {"demo-expert-4"}
    assert (tmp_path / "r" / "report.html").is_file()


def test_report_on_a_missing_project_names_it(tmp_path: Path, cli: Callable[..., Any]) -> None:
    result = cli("quality", "report", "--project", "nope", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 1 and "no project named 'nope'" in result.stderr
