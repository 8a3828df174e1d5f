"""DPO and SFT on the bundled SmolLM2-135M: a planted preference is learned, the reference
pass is cached with the run, and answers are what SFT learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tutelage.training import (  # noqa: E402
    Demonstration,
    DemonstrationData,
    DPOConfig,
    PreferenceData,
    SFTConfig,
    TrainingPair,
    train_dpo,
    train_sft,
)
from tutelage.training.dpo import REFERENCE_FILE, policy_logps  # noqa: E402
from tutelage.training.sft import answer_nll  # noqa: E402

TOPICS = ["tea", "rain", "maps", "bread", "chess", "boats", "rivers", "bikes", "owls", "jam"]


def polite_pairs(start: int, count: int) -> list[TrainingPair]:
    """Chosen answers end politely, rejected ones rudely; the rest is the same."""
    pairs = []
    for i in range(start, start + count):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Tell me one fact about {topic} ({i})."
        body = f"Here is a fact about {topic}."
        pairs.append(
            TrainingPair(
                prompt=f"user: {question}",
                chosen=f"{body} Thank you, I hope this helps!",
                rejected=f"{body} Now go away.",
                messages=(("user", question),),
            )
        )
    return pairs


@pytest.fixture(scope="module")
def policy(smollm2_small: str) -> str:
    return smollm2_small


def implicit_accuracy(trained: Path, base: str, pairs: list[TrainingPair]) -> float:
    """Share of pairs whose implicit reward (policy minus reference log-prob) prefers chosen."""
    rewards = policy_logps(trained, pairs) - policy_logps(base, pairs)
    return float((rewards[:, 0] > rewards[:, 1]).float().mean())


def test_dpo_learns_a_planted_preference_from_a_cached_reference(
    tmp_path: Path, policy: str
) -> None:
    held_out = polite_pairs(100, 8)
    out = tmp_path / "dpo"
    config = DPOConfig(out=out, base=policy, lr=2e-5, batch_size=4, max_steps=5, max_length=64)
    run = train_dpo(config, PreferenceData(pairs=polite_pairs(0, 20), source="planted"))

    # before training the implicit reward is zero for every answer: accuracy 0
    assert implicit_accuracy(out, policy, held_out) >= 0.875
    metrics = run.metrics
    assert metrics["steps"][-1]["loss"] < metrics["steps"][0]["loss"]
    assert metrics["reference_seconds"] > 0 and metrics["tokens_per_second"] > 0
    assert metrics["truncated"] == 0 and metrics["pairs"] == 20
    # the reference pass is cached with the run: one (chosen, rejected) row per pair
    reference = torch.load(out / REFERENCE_FILE)
    assert reference.shape == (20, 2) and bool((reference < 0).all())
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["method"] == "dpo" and len(record["config_hash"]) == 64
    assert record["code_version"] and record["data"]["source"] == "planted"
    assert 'loss = "sigmoid"' in (out / "config.toml").read_text(encoding="utf-8")
    assert (out / "loss.png").stat().st_size > 1000
    assert not (out / "checkpoint").exists()


def test_ipo_with_an_nll_term_and_lora_writes_an_adapter(tmp_path: Path, policy: str) -> None:
    out = tmp_path / "ipo"
    config = DPOConfig(
        out=out,
        base=policy,
        loss="ipo",
        nll_weight=1.0,
        lora=True,
        lora_rank=4,
        lr=1e-4,
        batch_size=2,
        max_steps=2,
        max_length=64,
    )
    run = train_dpo(config, PreferenceData(pairs=polite_pairs(0, 4), source="planted"))
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in run.metrics["steps"])
    adapter = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter["base_model_name_or_path"] == policy
    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()


def test_sft_learns_the_answers_and_not_the_prompts(tmp_path: Path, policy: str) -> None:
    def examples(start: int, count: int) -> list[Demonstration]:
        return [
            Demonstration(
                prompt=f"user: What is the code word for {TOPICS[i % len(TOPICS)]} ({i})?",
                answer="The code word is PAPERCLIP-7.",
                messages=(("user", f"What is the code word for {TOPICS[i % len(TOPICS)]} ({i})?"),),
            )
            for i in range(start, start + count)
        ]

    held_out = examples(100, 6)
    before = answer_nll(policy, held_out)
    out = tmp_path / "sft"
    config = SFTConfig(out=out, base=policy, lr=1e-4, batch_size=4, max_steps=4, max_length=256)
    run = train_sft(config, DemonstrationData(examples=examples(0, 16), source="planted"))
    after = answer_nll(out, held_out)
    assert after < before - 1.0, (before, after)
    # four short examples fit one packed row
    assert {s["rows"] for s in run.metrics["steps"]} == {1}
    assert run.metrics["tokens"] > 0 and run.metrics["examples"] == 16


def test_the_dpo_and_sft_commands_hold_out_prompts_and_read_chat_files(
    tmp_path: Path, policy: str
) -> None:
    from typer.testing import CliRunner

    from tutelage.cli import app
    from tutelage.training import load_demonstrations, load_pairs

    pairs = polite_pairs(0, 8)
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text(
        "".join(
            json.dumps({"prompt": p.messages[0][1], "chosen": p.chosen, "rejected": p.rejected})
            + "\n"
            for p in pairs
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    out = tmp_path / "dpo"
    result = runner.invoke(
        app,
        ["train", "dpo", str(pairs_file), "--out", str(out), "--base", policy,
         "--max-steps", "1", "--batch-size", "2", "--holdout", "0.25"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    held = load_pairs(out / "heldout.jsonl").pairs
    assert len(held) == 2 and {p.chosen for p in held} <= {p.chosen for p in pairs}
    trained_on = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["pairs"]
    assert trained_on == 6
    assert "reference pass" in result.output

    chat_file = tmp_path / "chat.jsonl"
    chat_file.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"Say hi ({i})"},
                              {"role": "assistant", "content": "Hi there!"}]}
            ) + "\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )  # fmt: skip
    assert [e.answer for e in load_demonstrations(chat_file).examples] == ["Hi there!"] * 4
    sft = runner.invoke(
        app,
        ["train", "sft", str(chat_file), "--out", str(tmp_path / "sft"), "--base", policy,
         "--max-steps", "1", "--batch-size", "4", "--no-pack"],
    )  # fmt: skip
    assert sft.exit_code == 0, sft.output
    metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"][0]["rows"] == 4 and metrics["examples"] == 4

    prompts_only = tmp_path / "prompts.jsonl"
    prompts_only.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    refused = runner.invoke(
        app, ["train", "sft", str(prompts_only), "--out", str(tmp_path / "x"), "--base", policy]
    )
    assert refused.exit_code != 0
    assert "no answer" in str(refused.exception) or "no answer" in refused.output


def test_sft_reads_an_sft_version_through_the_gate(tmp_path: Path) -> None:
    import pandas as pd

    from tutelage.datasets.versions import DatasetError, write_version
    from tutelage.store import open_store
    from tutelage.training import load_demonstrations

    db = f"sqlite:///{tmp_path / 'store.db'}"
    messages = [[{"role": "user", "content": f"Rewrite this ({i})"}] for i in range(3)]
    records = pd.DataFrame(
        {
            "split": ["train", "train", "test"],
            "prompt": [json.dumps(m) for m in messages],
            "completion": ["A better answer.", "Another one.", "Held back."],
            "source": "rewrite",
        }
    )
    store = open_store(db)
    write_version(
        store, name="rewrites-v1", kind="sft", project="p", records=records, parent=None,
        manifest_extra={}, actor="t",
    )  # fmt: skip
    store.close()
    with pytest.raises(DatasetError, match="--override"):
        load_demonstrations("rewrites-v1", db=db)
    data = load_demonstrations("rewrites-v1", db=db, override="a test")
    assert [e.answer for e in data.examples] == ["A better answer.", "Another one."]
    assert data.examples[0].messages == (("user", "Rewrite this (0)"),)
    assert data.version_name == "rewrites-v1" and data.version_hash
    with pytest.raises(DatasetError, match="preference"):
        from tutelage.training import load_pairs

        load_pairs("rewrites-v1", db=db, override="a test")
