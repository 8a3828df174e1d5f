"""An export, a snapshot or an import killed (SIGKILL, as `kill -9`) between any two of its steps
leaves nothing a later run trips on: what it left is found by `tutelage db doctor` and
removed by the next run, and the name it was writing is free again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tutelage.datasets.versions import datasets_root
from tutelage.interchange import import_file
from tutelage.store import open_store
from tutelage.store.staging_tables import ImportStagingRow, StagedComparisonRow, StagedPromptRow
from tutelage.store.tables import ComparisonRow, ProjectRow

Cli = Callable[..., subprocess.CompletedProcess[str]]

PAIRS = [
    {"prompt": f"Question {n}?", "chosen": f"Yes {n}.", "rejected": f"No {n}."} for n in range(4)
]


def killed_at(step: str, *args: str, db: str) -> subprocess.CompletedProcess[str]:
    """Run `tutelage ARGS` in a process of its own that dies (SIGKILL) at `step`."""
    env = {**os.environ, "TUTELAGE_DB": db, "TUTELAGE_CRASH_AT": step}
    return subprocess.run(
        [sys.executable, "-m", "tutelage", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,  # a machine four times slower than a quiet one still finishes
    )


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store of four imported pairs, which in-process commands (`cli`) use too."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    store = open_store(url)
    import_file(store, path=pairs, project="p")
    store.close()
    monkeypatch.setenv("TUTELAGE_DB", url)
    return url


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("step", ["export:written", "export:renamed"])
def test_a_killed_export_leaves_nothing_the_next_one_trips_on(
    db: str, tmp_path: Path, step: str, cli: Cli
) -> None:
    out = tmp_path / "exports"
    out.mkdir()
    target = out / "p.jsonl"
    export = ("export", "--project", "p", "--format", "trl", "--out", str(target))
    killed = killed_at(step, *export, db=db)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if step == "export:written":  # killed before the rename: no file, one staging file
        assert not target.exists()
        [left] = hidden(out)
        assert left.startswith(".p.jsonl.") and left.endswith(".tmp")
        listed = cli("db", "doctor", str(out), "--dry-run")
        assert listed.returncode == 0 and "would remove" in listed.stdout
        assert hidden(out) == [left]  # a dry run removes nothing
    else:  # killed after the rename: the file is whole
        assert len(target.read_text(encoding="utf-8").splitlines()) == len(PAIRS)
        assert hidden(out) == []
    again = cli(*export)
    assert again.returncode == 0, again.stderr
    assert len(target.read_text(encoding="utf-8").splitlines()) == len(PAIRS)
    assert hidden(out) == []


@pytest.mark.parametrize("step", ["snapshot:staged", "snapshot:renamed"])
def test_a_killed_snapshot_leaves_the_name_free(db: str, step: str, cli: Cli) -> None:
    snapshot = ("snapshot", "--project", "p", "--name", "v1")
    killed = killed_at(step, *snapshot, db=db)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    root = datasets_root()
    assert cli("datasets", "show", "v1").returncode == 1  # never registered
    if step == "snapshot:staged":
        [left] = hidden(root)
        assert left.startswith(".v1.") and left.endswith(".staging")
        assert not (root / "v1").exists()
    else:  # renamed into place, killed before its row was committed
        assert (root / "v1" / "manifest.json").is_file() and hidden(root) == []
        listed = cli("db", "doctor", "--dry-run")
        assert "never registered" in listed.stdout and (root / "v1").exists()
    made = cli(*snapshot)
    assert made.returncode == 0, made.stderr
    assert cli("datasets", "show", "v1").returncode == 0
    assert hidden(root) == []
    assert cli("db", "doctor").stdout.strip() == "nothing left behind"


def test_doctor_leaves_a_folder_that_is_not_a_killed_snapshots(db: str, cli: Cli) -> None:
    mine = datasets_root() / "notes"
    mine.mkdir(parents=True)
    (mine / "manifest.json").write_text('{"name": "notes"}', encoding="utf-8")
    (datasets_root() / ".notes.1-deadbeef.txt").write_text("a dot file of mine", "utf-8")
    done = cli("db", "doctor")
    assert done.returncode == 0 and "nothing left behind" in done.stdout
    assert (mine / "manifest.json").is_file()
    assert (datasets_root() / ".notes.1-deadbeef.txt").is_file()


def test_a_killed_import_shows_nothing_and_its_staged_records_are_removed(
    db: str, tmp_path: Path, cli: Cli
) -> None:
    more = tmp_path / "more.jsonl"
    more.write_text(
        "".join(json.dumps({**p, "prompt": f"Another {p['prompt']}"}) + "\n" for p in PAIRS),
        encoding="utf-8",
    )
    killed = killed_at("import:staged", "import", str(more), "--project", "q", db=db)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = open_store(db)
    with store.read_session() as session:  # staged, never published: not there to readers
        assert session.scalar(select(func.count()).select_from(ProjectRow)) == 1
        assert session.scalar(select(func.count()).select_from(StagedComparisonRow)) == len(PAIRS)
    listed = cli("db", "doctor", "--dry-run")
    assert "would remove the staged records of the import of more.jsonl" in listed.stdout
    assert "project 'q'" in listed.stdout
    done = cli("import", str(more), "--project", "q")  # the same file, now whole
    assert done.returncode == 0, done.stderr
    with store.read_session() as session:
        assert session.scalar(select(func.count()).select_from(ImportStagingRow)) == 0
        assert session.scalar(select(func.count()).select_from(StagedComparisonRow)) == 0
        assert session.scalar(select(func.count()).select_from(ComparisonRow)) == 2 * len(PAIRS)
    store.close()
    assert cli("db", "doctor").stdout.strip() == "nothing left behind"


def test_doctor_removes_what_a_killed_import_staged(db: str, tmp_path: Path, cli: Cli) -> None:
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"prompt": "Q?", "chosen": "Y.", "rejected": "N."}) + "\n", "utf-8")
    killed = killed_at("import:staged", "import", str(more), "--project", "q", db=db)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    removed = cli("db", "doctor")
    assert "removed the staged records of the import of more.jsonl" in removed.stdout
    store = open_store(db)
    with store.read_session() as session:
        assert session.scalar(select(func.count()).select_from(StagedPromptRow)) == 0
    store.close()
    assert cli("db", "doctor").stdout.strip() == "nothing left behind"
