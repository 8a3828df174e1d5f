"""Long command-line writes against experts at work, on SQLite: do they keep judging?

16 simulated experts (each with their own token and connection) loop next task -> submit
through the JSON API of a real server (a uvicorn subprocess, as `tutelage serve` runs it)
on a SQLite store, for a window of `--seconds`, five times: alone; while 10,000 new
pairs are imported into another project, once as `tutelage import` does now (staged in
batches of short transactions, published in one) and once as it did before (row by row
in one transaction, which on SQLite holds the writer lock throughout); and while a TRL
export of 50,000 expert judgments runs, now (one snapshot, no writer held) and before
(inside an ordinary transaction, holding the writer). It prints judgments per second
during each command and the ratio to the experts alone; the target is at least half.

    .venv/bin/python benchmarks/writer_lock.py [--seconds 45] [--experts 16] [--pairs 10000]

Client, server and the command share this machine's cores, which costs throughput by
itself: the "no writer held" export shows what is left of the cost once the lock is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from workspace_load import add_expert_judgments, build_template, drive, serving

# The export as it was before it read from a snapshot: the same reading and writing code
# inside `store.session()`, which on SQLite takes the writer for the whole export.
OLD_EXPORT = """
import sys
from pathlib import Path
from tutelage.formats import write_file
from tutelage.interchange import exporting
from tutelage.store import open_store
from tutelage.store.projects import get_project
store = open_store(sys.argv[1], migrate=False)
report = exporting.ExportReport(project="bench", format="trl", container="jsonl", out=sys.argv[2])
with store.session() as session:
    project_id = get_project(session, name="bench").id
    pairs = exporting._preference_pairs(session, project_id, report)
    print(write_file(Path(sys.argv[2]), "trl", pairs, "jsonl"))
"""

# The import as it was before it staged its records: row by row through RecordWriter
# inside one `store.session()`, which on SQLite holds the writer for the whole import.
OLD_IMPORT = """
import sys
from pathlib import Path
from tutelage.formats import read_file
from tutelage.records import Comparison, ComparisonOutcome, Project, Provenance
from tutelage.store import open_store
from tutelage.store.projects import create_project
from tutelage.store.writer import RecordWriter
store = open_store(sys.argv[1], migrate=False)
with store.session() as session:
    project_id = create_project(session, project=Project(name="before")).id
    writer = RecordWriter(session, project_id=project_id)
    provenance = Provenance(source="new-pairs")
    for item in read_file(Path(sys.argv[2]), "trl"):
        pair = item.record
        prompt_id = writer.prompt_id(pair.prompt)
        a_id = writer.completion_id(prompt_id, pair.chosen)
        b_id = writer.completion_id(prompt_id, pair.rejected)
        comparison = Comparison(
            a=pair.chosen.key(), b=pair.rejected.key(), outcome=ComparisonOutcome.A,
            provenance=provenance,
        )
        writer.add_comparison(prompt_id=prompt_id, a_id=a_id, b_id=b_id, comparison=comparison)
    writer.flush()
"""


def pairs_file(folder: Path, count: int) -> Path:
    path = folder / "new-pairs.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            prompt = f"New question {n}: " + "why is that so? " * 12
            row = {"prompt": prompt, "chosen": "A careful answer. " * 25, "rejected": f"No. {n}"}
            out.write(json.dumps(row) + "\n")
    return path


def rate_while(
    base_url: str, tokens: list[str], project_id: int, seconds: float, command: list[str] | None
) -> tuple[float, float]:
    """Judgments/s of the experts while `command` runs (the whole window when None), and
    how long the command took."""
    ticks: list[tuple[float, int]] = []
    span: dict[str, float] = {}

    def run_command() -> None:
        assert command is not None
        time.sleep(1.0)  # the experts are at full speed first
        span["start"] = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ})
        span["end"] = time.perf_counter()

    thread = threading.Thread(target=run_command) if command else None
    started = time.perf_counter()
    if thread:
        thread.start()
    asyncio.run(drive(base_url, tokens, project_id, seconds, 30, lambda t, n: ticks.append((t, n))))
    if thread:
        thread.join()
    if command is None:
        return ticks[-1][1] / ticks[-1][0], seconds
    begin, end = span["start"] - started, span.get("end", started + seconds) - started
    inside = [(t, n) for t, n in ticks if begin <= t <= end]
    if len(inside) < 2:
        raise SystemExit(f"the command outlasted the window: use --seconds above {end:.0f}")
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0), end - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--judgments", type=int, default=50_000)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        url = f"sqlite:///{folder / 'store.db'}"
        console.print(f"setting up: {args.experts} experts, {args.judgments:,} judgments …")
        template = build_template(url, prompts=4000, experts=args.experts, overlap=50, seed=1)
        add_expert_judgments(url, template, args.judgments)
        new_pairs = pairs_file(folder, args.pairs)
        tool = [sys.executable, "-m", "tutelage"]
        commands = {
            "experts alone": None,
            f"import of {args.pairs:,} pairs, staged (now)": [
                *tool, "import", str(new_pairs), "--project", "other", "--db", url,
            ],
            f"import of {args.pairs:,} pairs, writer held (before)": [
                sys.executable, "-c", OLD_IMPORT, url, str(new_pairs),
            ],
            f"export of {args.judgments:,} judgments, no writer held (now)": [
                *tool, "export", "--project", "bench", "--format", "trl",
                "--out", str(folder / "now.jsonl"), "--db", url,
            ],
            f"export of {args.judgments:,} judgments, writer held (before)": [
                sys.executable, "-c", OLD_EXPORT, url, str(folder / "before.jsonl"),
            ],
        }  # fmt: skip
        table = Table(title=f"SQLite, {args.experts} experts judging, {args.seconds:.0f} s windows")
        for column in ("while", "judgments/s", "vs alone", "command took", "at least half?"):
            table.add_column(column, justify="left" if column == "while" else "right")
        alone = 0.0
        with serving(url, template.admin_token, folder, None, "wall") as server:
            for name, command in commands.items():
                console.print(f"measuring: {name} …")
                rate, took = rate_while(
                    server.base_url, template.expert_tokens, template.project_id,
                    args.seconds, command,
                )  # fmt: skip
                alone = alone or rate
                share = rate / alone
                table.add_row(
                    name,
                    f"{rate:.1f}",
                    f"{share:.0%}",
                    f"{took:.1f} s" if command else "",
                    ("yes" if share >= 0.5 else "NO") if command else "",
                )
        console.print(table)


if __name__ == "__main__":
    main()
