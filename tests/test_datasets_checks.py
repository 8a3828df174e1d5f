"""Contamination, leakage, eval sets, `tutelage check` and redaction, on real stores."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from datasketch import MinHash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tutelage.datasets import events, open_version, read_records, write_version
from tutelage.datasets.checks import CheckSettings, run_checks
from tutelage.datasets.contamination import (
    OverlapIndex,
    OverlapSettings,
    _Signer,
    minhash_inputs,
    normalise,
)
from tutelage.datasets.evalsets import eval_items, list_eval_sets, register_eval_set
from tutelage.datasets.redaction import redact_version
from tutelage.store import Store

REPO = Path(__file__).resolve().parents[1]
DEMO_PAIRS = REPO / "src" / "tutelage" / "demo" / "sample_pairs.jsonl"
_names = itertools.count()

EVAL_QUESTION = (
    "Explain how the kidneys regulate blood pressure through the renin angiotensin "
    "system and which drugs act on each step of that pathway"
)
# The same question with 2 of its 24 words changed: a paraphrase (Jaccard 16/28).
PARAPHRASE = (
    "Explain how the kidneys regulate blood pressure through the renin angiotensin "
    "system and which medicines act on each stage of that pathway"
)
UNRELATED = "Write a short poem about autumn leaves falling on a quiet village road at dusk"


def _messages(text: str) -> str:
    return json.dumps([{"role": "user", "content": text}])


def _pairs(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Preference records from (split, prompt, chosen, rejected)."""
    return pd.DataFrame(
        [
            {"split": split, "prompt": _messages(prompt), "chosen": chosen, "rejected": rejected}
            for split, prompt, chosen, rejected in rows
        ]
    )


def _write_trl(path: Path, prompts: list[str]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"prompt": p, "chosen": "a reference answer", "rejected": "no idea"}) + "\n"
            for p in prompts
        ),
        encoding="utf-8",
    )
    return path


def _files(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


# --- pure parts ---------------------------------------------------------------------


def test_normalisation_is_nfkc_lower_case_without_punctuation() -> None:
    # a full-width H, a ligature fi: NFKC makes them h and fi
    text = "  \uff28\u00e9llo,\tWORLD!  \ufb01ne-tune\n don't "
    assert normalise(text) == "h\u00e9llo world fine tune don t"


def test_batch_signatures_equal_datasketch_minhash() -> None:
    signer = _Signer(OverlapSettings(num_perm=64, seed=3))
    batch = signer.batch(
        ["the quick brown fox jumps over the lazy dog", "too short", EVAL_QUESTION]
    )
    assert list(batch.usable) == [0, 2]
    for row in range(2):
        shingles = batch.shingles[batch.offsets[row] : batch.offsets[row + 1]]
        reference = MinHash(num_perm=64, seed=3, scheme="affine32", hashfunc=lambda v: v)
        reference.update_batch(minhash_inputs(shingles).tolist())
        assert np.array_equal(reference.hashvalues, batch.signatures[row])


def test_a_paraphrase_is_found_and_unrelated_text_is_not() -> None:
    index = OverlapIndex(
        ["a decoy about tax returns and filing deadlines in spring", EVAL_QUESTION]
    )
    hits = list(index.matches([UNRELATED, PARAPHRASE, EVAL_QUESTION.upper() + "!!", "hi"]))
    by_query = {h.query: h for h in hits}
    assert set(by_query) == {1, 2}
    assert by_query[1].reference == 1 and not by_query[1].exact
    assert 0.4 <= by_query[1].similarity < 1.0
    assert by_query[2].exact and by_query[2].similarity == 1.0


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="near_threshold"):
        OverlapSettings(near_threshold=0)
    with pytest.raises(ValueError, match="min_words"):
        OverlapSettings(shingle_size=5, min_words=4)


# --- eval sets ----------------------------------------------------------------------


def test_evalsets_add_reads_trl_with_positions(store: Store, tmp_path: Path) -> None:
    registered = register_eval_set(store, name="demo-eval", path=DEMO_PAIRS)
    assert registered.format == "trl" and registered.count == 12
    with store.session() as session:
        items = eval_items(session)
        assert [s.name for s in list_eval_sets(session)] == ["demo-eval"]
    first = json.loads(DEMO_PAIRS.read_text(encoding="utf-8").splitlines()[0])
    assert [i.position for i in items] == list(range(12))
    assert items[0].prompt_text == f"user: {first['prompt'][0]['content']}"
    assert items[0].answer_text == first["chosen"][0]["content"]
    with pytest.raises(Exception, match="exists already"):
        register_eval_set(store, name="demo-eval", path=DEMO_PAIRS)


def test_evalsets_add_reads_hh_rlhf(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "hh.jsonl.gz"
    lines = [
        {
            "chosen": f"\n\nHuman: question {n} about rivers\n\nAssistant: answer {n}",
            "rejected": f"\n\nHuman: question {n} about rivers\n\nAssistant: nope",
        }
        for n in range(3)
    ]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in lines)
    registered = register_eval_set(store, name="hh", path=path)
    assert (registered.format, registered.count) == ("hh-rlhf", 3)
    with store.session() as session:
        item = eval_items(session)[2]
    assert (item.position, item.prompt_text, item.answer_text) == (
        2,
        "user: question 2 about rivers",
        "answer 2",
    )


def test_evalsets_add_reads_the_shared_hh_rlhf_file(store: Store, hh_rlhf: Path) -> None:
    registered = register_eval_set(store, name="hh-test", path=hh_rlhf)
    assert registered.format == "hh-rlhf" and registered.count > 2000


# --- check --------------------------------------------------------------------------


def _contaminated_version(store: Store, tmp_path: Path) -> Any:
    register_eval_set(
        store,
        name="bench",
        path=_write_trl(tmp_path / "bench.jsonl", [UNRELATED + " twice over", EVAL_QUESTION]),
    )
    leak_a = "Describe the stages of mitosis in plant cells with one example for each stage"
    leak_b = "Describe the stages of mitosis in animal cells with one example for each stage"
    records = _pairs(
        [
            ("train", PARAPHRASE, "Renin is released by the kidney.", "No."),
            ("train", leak_a, "Prophase first.", "Dunno."),
            ("train", "Email me at jane.doe@example.org about the results please", "ok", "no"),
            ("test", leak_b, "Prophase comes first.", "Dunno at all."),
            ("validation", "What is the boiling point of water at sea level", "100 C", "50 C"),
        ]
    )
    return write_version(
        store,
        name=f"v{next(_names)}",
        kind="preference",
        project="p",
        records=records,
        parent=None,
        manifest_extra={},
        actor="test",
    )


def test_check_finds_contamination_leakage_and_pii_and_records_it(
    store: Store, tmp_path: Path
) -> None:
    version = _contaminated_version(store, tmp_path)
    report = run_checks(store, version=version, settings=CheckSettings(), actor="tester")
    frame = read_records(version).set_index("record_id")

    [hit] = report.contamination
    assert (hit["eval_set"], hit["eval_index"], hit["eval_field"]) == ("bench", 1, "prompt")
    assert frame.loc[hit["record_id"], "prompt_text"] == f"user: {PARAPHRASE}"
    assert hit["field"] == "prompt_text" and 0.4 <= hit["similarity"] < 1

    [leak] = report.leakage
    assert "plant" in frame.loc[leak["record_id"], "prompt_text"]
    assert "animal" in frame.loc[leak["other_record_id"], "prompt_text"]
    assert leak["other_split"] == "test"

    [pii] = report.pii
    text = frame.loc[pii["record_id"], pii["field"]]
    assert text[pii["start"] : pii["end"]] == "jane.doe@example.org" and pii["kind"] == "email"

    assert report.passed is False and len(report.reasons) == 3
    with store.session() as session:
        [event] = events(session, version=version)
    assert (event.kind, event.passed, event.actor) == ("check", False, "tester")
    assert event.details["contamination"] == report.contamination


def test_a_clean_version_passes(store: Store) -> None:
    records = _pairs(
        [
            ("train", "How do I season a cast iron pan before using it", "Oil it.", "No."),
            ("test", "Which planets in our solar system have rings around them", "All four.", "x"),
        ]
    )
    version = write_version(
        store,
        name="clean",
        kind="preference",
        project="p",
        records=records,
        parent=None,
        manifest_extra={},
        actor="t",
    )
    report = run_checks(store, version=version)
    assert report.passed and report.to_json()["contamination"] == []


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tutelage", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=1200,  # generous: a machine four times slower still finishes
    )


def test_check_command_prints_json_and_fails_a_failed_version(
    tmp_path: Path, store_url: str
) -> None:
    from tutelage.store import open_store

    store = open_store(store_url)
    version = _contaminated_version(store, tmp_path)
    store.close()
    result = _run("check", version.name, "--json", "--db", store_url)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {"passed", "contamination", "leakage", "pii", "licence"} <= set(report)
    assert report["passed"] is False
    assert {"eval_set", "eval_index", "record_id", "similarity"} <= set(report["contamination"][0])

    strict = _run("check", version.name, "--json", "--near-threshold", "0.95", "--db", store_url)
    assert json.loads(strict.stdout)["contamination"] == []  # the paraphrase is below 0.95

    missing = _run("check", "no-such-version", "--db", store_url)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "no-such-version" in missing.stderr


def test_evalsets_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    added = _run("evalsets", "add", "demo", str(DEMO_PAIRS), "--format", "trl", "--db", db)
    assert added.returncode == 0, added.stderr
    assert "12 items" in added.stdout
    listed = _run("evalsets", "list", "--db", db)
    assert "demo" in listed.stdout and "12" in listed.stdout


# --- redaction ----------------------------------------------------------------------


def test_redact_writes_a_new_version_that_passes_and_keeps_the_old(
    store: Store, tmp_path: Path
) -> None:
    records = _pairs(
        [
            ("train", "Reach me at jane@example.org or +1 415 555 2671", "Noted.", "No."),
            ("test", "My card is 4111 1111 1111 1111, is that safe to share", "No!", "Yes."),
        ]
    )
    source = write_version(
        store,
        name="raw",
        kind="preference",
        project="p",
        records=records,
        parent=None,
        manifest_extra={},
        actor="t",
    )
    before = _files(source.path)
    redacted = redact_version(store, version=source, name="raw-redacted", actor="t")
    assert _files(source.path) == before
    texts = read_records(redacted)["prompt_text"].tolist()
    assert "user: Reach me at [EMAIL] or [PHONE]" in texts
    assert "user: My card is [CARD], is that safe to share" in texts
    assert redacted.parent == "raw" and redacted.hash != source.hash
    assert redacted.manifest["redaction"]["replaced"] == {"card": 1, "email": 1, "phone": 1}
    with store.session() as session:
        assert [e.kind for e in events(session, version=redacted)] == ["redaction"]
        assert open_version(session, ref="raw").hash == source.hash
    assert not run_checks(store, version=source).passed
    assert run_checks(store, version=redacted).passed

    result = _run("redact", "no-such", "--name", "x", "--db", store.url)
    assert result.returncode == 1 and "no-such" in result.stderr


TEXT = st.text(alphabet="abcdefgh @.0123456789", min_size=1, max_size=40)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(prompts=st.lists(TEXT, min_size=1, max_size=4, unique=True), email=st.booleans())
def test_redaction_never_changes_the_source(store: Store, prompts: list[str], email: bool) -> None:
    rows = [
        ("train", p + (" x@example.org" if email else ""), f"a{n}", "b")
        for n, p in enumerate(prompts)
    ]
    source = write_version(
        store,
        name=f"src{next(_names)}",
        kind="preference",
        project="p",
        records=_pairs(rows),
        parent=None,
        manifest_extra={},
        actor="t",
    )
    before = (_files(source.path), source.hash, read_records(source).to_dict("records"))
    redact_version(store, version=source, name=f"red{next(_names)}")
    with store.session() as session:
        again = open_version(session, ref=source.name)
    assert (_files(again.path), again.hash, read_records(again).to_dict("records")) == before
