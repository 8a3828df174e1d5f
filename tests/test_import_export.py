"""Importing preference data into a store and exporting it again."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from datasets import load_dataset, load_from_disk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tutelage.formats import FormatError
from tutelage.interchange import export_project, import_file
from tutelage.records import Completion, Message, PreferencePair, Prompt
from tutelage.store import Store, StoreError, open_store
from tutelage.store.tables import (
    ComparisonRow,
    CompletionRow,
    ImportRow,
    ProjectRow,
    PromptRow,
)


def counts(store: Store) -> dict[str, int]:
    with store.session() as session:
        return {
            table.__tablename__: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (ProjectRow, ImportRow, PromptRow, CompletionRow, ComparisonRow)
        }


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def trl_row(prompt: str, chosen: str, rejected: str) -> dict[str, str]:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def test_hh_rlhf_import_counts_and_trl_export_loads(
    store: Store, hh_rlhf: Path, tmp_path: Path
) -> None:
    report = import_file(store, path=hh_rlhf, project="demo")

    assert report.format == "hh-rlhf" and report.source == "hh-rlhf"
    assert report.lines_read == 2354
    assert report.skipped == {"chosen and rejected are identical": 2}
    assert report.records_stored == report.comparisons_added == 2352
    stored = counts(store)
    assert stored["comparisons"] == 2352
    assert stored["completions"] == 2 * 2352  # every pair differs in its answers
    with store.session() as session:
        sources = set(session.scalars(select(ComparisonRow.source)))
        outcomes = set(session.scalars(select(ComparisonRow.outcome)))
    assert sources == {"hh-rlhf"} and outcomes == {"a"}

    out = tmp_path / "demo-trl.jsonl"
    export = export_project(store, project="demo", fmt="trl", out=out)
    assert export.written == 2352
    dataset = load_dataset("json", data_files=str(out), split="train")
    assert set(dataset.column_names) >= {"prompt", "chosen", "rejected"}
    assert len(dataset) == 2352
    first = dataset[0]
    assert first["prompt"][0]["role"] == "user"
    assert first["prompt"][0]["content"].startswith("Do you know why turkeys")
    assert first["chosen"][0]["role"] == "assistant"
    assert all(row["chosen"][0]["content"] != row["rejected"][0]["content"] for row in dataset)


def break_line(source: Path, target: Path, line: int) -> Path:
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        lines = handle.readlines()
    lines[line - 1] = lines[line - 1][:40] + "\n"  # cut mid-object: malformed JSON
    with gzip.open(target, "wt", encoding="utf-8") as handle:
        handle.writelines(lines)
    return target


def test_a_broken_line_names_the_line_and_stores_nothing(
    store: Store, hh_rlhf: Path, tmp_path: Path
) -> None:
    broken = break_line(hh_rlhf, tmp_path / "broken.jsonl.gz", line=3)

    with pytest.raises(FormatError) as caught:
        import_file(store, path=broken, project="demo")

    assert f"{broken}:3:" in str(caught.value)
    assert set(counts(store).values()) == {0}  # not even the project was created


def test_skip_invalid_keeps_the_valid_lines_and_says_why(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps(trl_row("Q1", "good", "bad"))
        + "\n"
        + "{not json\n"
        + json.dumps({"prompt": "Q3", "chosen": "good"})
        + "\n"
        + json.dumps(trl_row("Q4", "", "bad"))
        + "\n"
        + json.dumps(trl_row("Q5", "same", "same"))
        + "\n"
        + json.dumps(trl_row("Q6", "yes", "no"))
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(FormatError, match=r"mixed.jsonl:2:"):
        import_file(store, path=path, project="p")
    assert counts(store)["comparisons"] == 0

    report = import_file(store, path=path, project="p", skip_invalid=True)

    assert report.lines_read == 6
    assert report.records_stored == 2
    assert report.skipped_total == 4
    assert report.skipped["chosen and rejected are identical"] == 1
    assert any(":2:" in example for example in report.skipped_examples)
    assert any("rejected" in reason for reason in report.skipped)
    assert any("chosen" in reason for reason in report.skipped)
    assert counts(store)["comparisons"] == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "no records"),
        (json.dumps({"question": "?", "answer": "!"}).encode() + b"\n", "question"),
    ],
)
def test_undetectable_files_are_refused(
    store: Store, tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=expected):
        import_file(store, path=path, project="p")
    assert counts(store)["projects"] == 0


def test_unknown_format_and_missing_file(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [trl_row("q", "a", "b")])
    with pytest.raises(FormatError, match="unknown format"):
        import_file(store, path=path, project="p", fmt="csv-of-doom")
    with pytest.raises(FormatError, match="no such file"):
        import_file(store, path=tmp_path / "absent.jsonl", project="p")


def test_a_truncated_gzip_stores_nothing(store: Store, hh_rlhf: Path, tmp_path: Path) -> None:
    data = hh_rlhf.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="gzip"):
        import_file(store, path=cut, project="p")
    assert set(counts(store).values()) == {0}


def test_the_same_file_twice_is_refused(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", [trl_row("q", "a", "b")])
    import_file(store, path=path, project="p")
    with pytest.raises(StoreError, match="imported into project 'p' already"):
        import_file(store, path=path, project="p")
    assert counts(store)["comparisons"] == 1
    # another project may hold the same data
    import_file(store, path=path, project="q")
    assert counts(store)["comparisons"] == 2


def test_shared_prompts_are_stored_once(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [trl_row("q", "a", "b"), trl_row("q", "a", "c"), trl_row("other", "a", "b")],
    )
    report = import_file(store, path=path, project="p")
    assert (report.prompts_added, report.completions_added, report.comparisons_added) == (2, 5, 3)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".parquet", ""])
def test_every_container_round_trips(
    store: Store, second_store: Store, tmp_path: Path, suffix: str
) -> None:
    source = write_jsonl(
        tmp_path / "pairs.jsonl",
        [trl_row("q1", "good", "bad"), trl_row("q2", "fine", "poor")],
    )
    import_file(store, path=source, project="p")
    out = tmp_path / f"export{suffix or '-folder'}"

    report = export_project(store, project="p", fmt="trl", out=out)

    assert report.written == 2
    if suffix == "":
        assert len(load_from_disk(str(out))) == 2
        return
    again = import_file(second_store, path=out, project="p")
    assert again.records_stored == 2
    assert counts(second_store)["comparisons"] == 2


def test_ties_are_left_out_of_preference_exports_and_counted(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", [trl_row("q", "a", "b"), trl_row("r", "c", "d")])
    import_file(store, path=path, project="p")
    with store.session() as session:
        first = session.scalars(select(ComparisonRow).order_by(ComparisonRow.id)).first()
        assert first is not None
        first.outcome = "tie"
    report = export_project(store, project="p", fmt="trl", out=tmp_path / "out.jsonl")
    assert report.written == 1
    assert report.left_out == {"comparisons judged tie": 1}


def test_chat_prompts_import_and_export(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"messages": [{"role": "user", "content": "Hi?"}]},
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "4"},
                ]
            },
        ],
    )
    report = import_file(store, path=path, project="p")
    assert report.format == "chat"
    assert (report.prompts_added, report.completions_added) == (2, 1)
    out = tmp_path / "prompts.jsonl"
    assert export_project(store, project="p", fmt="chat", out=out).written == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_export_of_an_unknown_project_names_the_known_ones(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", [trl_row("q", "a", "b")])
    import_file(store, path=path, project="medicine")
    with pytest.raises(StoreError, match=r"no project named 'law'.*medicine"):
        export_project(store, project="law", fmt="trl", out=tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


# Any text a store can hold: not NUL nor a lone surrogate (both refused where text enters).
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=40,
)
asked = text.filter(str.strip)  # a user turn of only whitespace is an empty field


@st.composite
def preference_pairs(draw: st.DrawFn) -> PreferencePair:
    turns = draw(st.integers(min_value=0, max_value=2))
    messages: list[Message] = []
    for _ in range(turns):
        messages += [
            Message(role="user", content=draw(asked)),
            Message(role="assistant", content=draw(text)),
        ]
    messages.append(Message(role="user", content=draw(asked)))
    chosen, rejected = draw(st.lists(text, min_size=2, max_size=2, unique=True))
    return PreferencePair(
        prompt=Prompt(messages=tuple(messages)),
        chosen=Completion(text=chosen),
        rejected=Completion(text=rejected),
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pairs=st.lists(preference_pairs(), min_size=1, max_size=8))
def test_export_import_export_gives_the_same_records(
    pairs: list[PreferencePair], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tutelage.formats import read_file, write_file

    folder = tmp_path_factory.mktemp("roundtrip")
    source = folder / "source.jsonl"
    write_file(source, "trl", pairs)
    first_store = open_store(f"sqlite:///{folder / 'first.db'}")
    second_store = open_store(f"sqlite:///{folder / 'second.db'}")
    try:
        import_file(first_store, path=source, project="p")
        export_project(first_store, project="p", fmt="trl", out=folder / "one.jsonl")
        import_file(second_store, path=folder / "one.jsonl", project="p")
        export_project(second_store, project="p", fmt="trl", out=folder / "two.jsonl")
    finally:
        first_store.close()
        second_store.close()

    assert (folder / "one.jsonl").read_bytes() == (folder / "two.jsonl").read_bytes()
    exported = [item.record for item in read_file(folder / "one.jsonl")]
    assert exported == pairs
