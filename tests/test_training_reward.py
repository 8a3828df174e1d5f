"""Reward-model training on the bundled MiniLM: a planted rule is learned, runs are complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner

from tutelage.cli import app
from tutelage.datasets.versions import write_version
from tutelage.store import open_store
from tutelage.training import (
    PreferenceData,
    RewardConfig,
    TrainingPair,
    score_pairs,
    tokenise_pairs,
    train_reward,
)
from tutelage.training.reward import default_base

TOPICS = ["tea", "rain", "trains", "maps", "bread", "chess", "boats", "rivers"]


def planted_pairs(n: int = 16) -> list[TrainingPair]:
    """Chosen answers are polite and helpful, rejected ones rude: an easy rule to learn."""
    return [
        TrainingPair(
            prompt=f"user: Tell me something about {TOPICS[i % len(TOPICS)]}, please ({i}).",
            chosen=f"Thank you for asking! Happy to help: {TOPICS[i % len(TOPICS)]} are lovely.",
            rejected="No. Go away, that is a stupid question and I will not answer it.",
        )
        for i in range(n)
    ]


def mean_margin(model_dir: str | Path, pairs: list[TrainingPair]) -> float:
    scores = score_pairs(model_dir, pairs)
    return sum(c - r for c, r in scores) / len(scores)


def test_a_tiny_run_learns_the_planted_rule(tmp_path: Path) -> None:
    pairs = planted_pairs()
    out = tmp_path / "rm"
    config = RewardConfig(
        out=out, max_steps=10, batch_size=4, max_length=64, lr=3e-4, seed=0, pooling="mean"
    )
    run = train_reward(config, PreferenceData(pairs=pairs, source="planted"), progress=False)

    before = mean_margin(default_base(), pairs)  # the base with an untrained head
    after = mean_margin(out, pairs)
    assert after > before + 0.3, (before, after)
    scores = score_pairs(out, pairs)
    assert sum(c > r for c, r in scores) / len(scores) > 0.5

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics == run.metrics
    assert len(metrics["steps"]) == 10
    assert set(metrics["steps"][0]) == {"step", "loss", "accuracy", "lr"}
    for key in ("final", "train_seconds", "tokens_per_second", "peak_memory_mb", "truncated"):
        assert key in metrics
    assert metrics["truncated"] == 0 and metrics["tokens_per_second"] > 0
    assert metrics["steps"][-1]["loss"] < metrics["steps"][0]["loss"]
    assert (out / "loss.png").stat().st_size > 1000
    assert "max_steps = 10" in (out / "config.toml").read_text(encoding="utf-8")

    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert reloaded.config.num_labels == 1
    assert reloaded.config.pad_token_id == tokenizer.pad_token_id is not None
    # the mean-pooled head travels with the folder: plain transformers, in a fresh
    # interpreter without tutelage imported, loads it with trust_remote_code
    code = (
        "import sys; from transformers import AutoModelForSequenceClassification as A, "
        "AutoTokenizer as T; m = A.from_pretrained(sys.argv[1], trust_remote_code=True).eval(); "
        "t = T.from_pretrained(sys.argv[1]); e = t(sys.argv[2], sys.argv[3], return_tensors='pt'); "
        "print(type(m).__name__, float(m(**e).logits))"
    )
    pair = pairs[0]
    plain = subprocess.run(
        [sys.executable, "-c", code, str(out), pair.prompt, pair.chosen],
        capture_output=True, text=True, env=dict(os.environ), check=True,
    )  # fmt: skip
    name, reward = plain.stdout.split()
    assert name == "MeanPooledBertForSequenceClassification"
    assert float(reward) == pytest.approx(scores[0][0], abs=1e-4)
    print(f"tiny run: {metrics['train_seconds']:.2f} s, {metrics['tokens_per_second']:.0f} tok/s")


def test_token_embeddings_stay_as_pretrained_unless_asked_to_train(tmp_path: Path) -> None:
    data = PreferenceData(pairs=planted_pairs(8), source="planted")
    base = AutoModelForSequenceClassification.from_pretrained(default_base(), num_labels=1)
    pretrained = base.get_input_embeddings().weight.detach().clone()
    layer = "bert.encoder.layer.0.attention.self.query.weight"
    before = base.state_dict()[layer].clone()

    def trained(**settings: object) -> dict[str, torch.Tensor]:
        out = tmp_path / "-".join(f"{k}={v}" for k, v in settings.items())
        config = RewardConfig(out=out, max_steps=3, batch_size=4, max_length=64, lr=1e-3)
        config = replace(config, **settings)
        train_reward(config, data, progress=False)
        assert f"freeze_embeddings = {str(config.freeze_embeddings).lower()}" in (
            out / "config.toml"
        ).read_text(encoding="utf-8")
        return AutoModelForSequenceClassification.from_pretrained(out).state_dict()

    # the default, also with gradient checkpointing: the encoder learns, the embeddings stay
    for checkpointing in (False, True):
        state = trained(gradient_checkpointing=checkpointing)
        assert torch.equal(state["bert.embeddings.word_embeddings.weight"], pretrained)
        assert not torch.allclose(state[layer], before)
    state = trained(freeze_embeddings=False)
    assert not torch.equal(state["bert.embeddings.word_embeddings.weight"], pretrained)


def test_long_pairs_are_cut_from_the_left_of_the_prompt_and_counted() -> None:
    tokenizer = AutoTokenizer.from_pretrained(default_base())
    long_prompt = " ".join(f"word{i}" for i in range(100))
    pairs = [
        TrainingPair(prompt=long_prompt, chosen="the kept answer", rejected="another answer"),
        TrainingPair(prompt="short", chosen="yes", rejected="no"),
    ]
    tokenised = tokenise_pairs(tokenizer, pairs, max_length=32)
    assert [p.truncated for p in tokenised] == [True, False]
    ids = tokenised[0].chosen["input_ids"]
    assert len(ids) <= 32
    text = tokenizer.decode(ids)
    assert "the kept answer" in text and "word99" in text and "word0 " not in text


def test_the_gate_refuses_an_unchecked_version_unless_overridden(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    records = pd.DataFrame(
        {
            "split": "train",
            "prompt": [
                json.dumps([{"role": "user", "content": p.prompt}]) for p in planted_pairs(4)
            ],
            "chosen": [p.chosen for p in planted_pairs(4)],
            "rejected": [p.rejected for p in planted_pairs(4)],
        }
    )
    store = open_store(db)
    write_version(
        store,
        name="v1",
        kind="preference",
        project="p",
        records=records,
        parent=None,
        manifest_extra={},
        actor="t",
    )
    store.close()

    def tutelage(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tutelage", *args]
        return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))

    refused = tutelage("train", "reward", "v1", "--out", str(tmp_path / "rm"), "--db", db)
    assert refused.returncode == 1
    assert "has not been checked" in refused.stderr and "--override" in refused.stderr
    assert not (tmp_path / "rm").exists()

    # in-process from here on: a second interpreter would import torch again
    runner = CliRunner()
    trained = runner.invoke(
        app,
        ["train", "reward", "v1", "--out", str(tmp_path / "rm"), "--db", db,
         "--max-steps", "2", "--batch-size", "2", "--override", "a test"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "rm" / "metrics.json").read_text())["data"]["version"] == "v1"

    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text(
        "".join(
            json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
            for p in planted_pairs(3)
        ),
        encoding="utf-8",
    )
    scored_file = tmp_path / "rewards.jsonl"
    scored = runner.invoke(
        app, ["score", str(tmp_path / "rm"), "--data", str(pairs_file), "--out", str(scored_file)]
    )
    assert scored.exit_code == 0, scored.output
    rows = [json.loads(line) for line in scored_file.read_text().splitlines()]
    assert len(rows) == 6 and {r["side"] for r in rows} == {"chosen", "rejected"}
    assert all(isinstance(r["reward"], float) for r in rows)


@pytest.mark.parametrize(
    "bad", [{"max_steps": 0}, {"batch_size": 0}, {"lr": 0.0}, {"warmup": 1.0}, {"warmup": -0.1}]
)
def test_config_is_validated(tmp_path: Path, bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RewardConfig(out=tmp_path, **bad)  # type: ignore[arg-type]


def test_the_learning_rate_warms_up_then_decays_to_zero() -> None:
    import torch

    from tutelage.training.run import make_schedule

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    schedule = make_schedule(optimizer, total=10, warmup=0.2)
    rates = []
    for _ in range(10):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    # two warm-up steps climb towards the peak, which the third reaches; then a straight
    # line down that would reach zero at step 10
    assert rates[0] < rates[1] < rates[2] == 1.0
    assert all(a > b for a, b in zip(rates[2:], rates[3:], strict=False))  # noqa: RUF007
    assert rates[-1] == pytest.approx(1 / 8)
    without = make_schedule(torch.optim.SGD([weight], lr=1.0), total=10, warmup=0.0)
    assert without.get_last_lr()[0] == 1.0
