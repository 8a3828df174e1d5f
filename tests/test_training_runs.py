"""What every training run gives a user: saved configs that load and rerun, a resume
after a crash that ends where the uninterrupted run would, ensembles with a spread,
LoRA adapters, and reward models on a decoder base whose padding is handled."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from tutelage.cli import app  # noqa: E402
from tutelage.cli.train import _resolve_base  # noqa: E402
from tutelage.training import (  # noqa: E402
    DPOConfig,
    PreferenceData,
    RewardConfig,
    SFTConfig,
    TrainingPair,
    load_pairs,
    score_pairs,
    train_reward,
)
from tutelage.training.run import config_from_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOPICS = ["tea", "rain", "trains", "maps", "bread", "chess", "boats", "rivers"]


def planted_pairs(n: int = 16) -> list[TrainingPair]:
    return [
        TrainingPair(
            prompt=f"user: Tell me something about {TOPICS[i % len(TOPICS)]}, please ({i}).",
            chosen=f"Thank you for asking! Happy to help: {TOPICS[i % len(TOPICS)]} are lovely.",
            rejected="No. Go away, that is a stupid question and I will not answer it.",
            messages=(("user", f"Tell me something about {TOPICS[i % len(TOPICS)]} ({i})."),),
        )
        for i in range(n)
    ]


def write_pairs(path: Path, pairs: list[TrainingPair]) -> Path:
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path, tmp_path: Path) -> None:
    types = {"reward": RewardConfig, "dpo": DPOConfig, "sft": SFTConfig}
    method = next(m for m in types if f"[{m}]" in path.read_text(encoding="utf-8"))
    settings = config_from_file(path, method, types[method])
    assert settings, f"{path} sets nothing"
    if "base" in settings:
        settings["base"] = _resolve_base(settings["base"])
    config = types[method](out=tmp_path, **settings)
    for key, value in settings.items():
        assert getattr(config, key) == value


def test_flags_win_over_the_config_file_and_bad_keys_are_named(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", planted_pairs(8))
    config = tmp_path / "run.toml"
    config.write_text("[reward]\nmax_steps = 2\nbatch_size = 2\nlr = 1e-4\n", encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "rm"
    result = runner.invoke(
        app,
        ["train", "reward", str(data), "--out", str(out), "--config", str(config),
         "--batch-size", "4", "--max-length", "64"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = config_from_file(out / "config.toml", "reward", RewardConfig)
    assert saved["batch_size"] == 4 and saved["max_steps"] == 2 and saved["lr"] == 1e-4
    assert len(json.loads((out / "metrics.json").read_text())["steps"]) == 2

    def refused(settings: str) -> str:
        """Train with `settings` as the config file; return the error, boxes removed."""
        config.write_text(f"[reward]\n{settings}\n", encoding="utf-8")
        bad = runner.invoke(app, ["train", "reward", str(data), "--out", str(tmp_path / "x"),
                                  "--config", str(config)])  # fmt: skip
        assert bad.exit_code == 2
        assert not (tmp_path / "x").exists()
        # the message sits in a box that wraps to the terminal's width: compare without it
        return re.sub(r"[\s│╭╮╰╯─]+", "", bad.output)

    flat = refused("batch_sise = 2")
    assert "batch_sise" in flat and "run.toml" in flat
    flat = refused("warmup = 2.0")  # a known key, bad value
    assert "run.toml" in flat and "warmupmustbeafraction" in flat
    flat = refused('freeze_embeddings = "no"')  # a string, where true or false belongs
    assert "run.toml" in flat and "freeze_embeddingsmustbetrueorfalse,not'no'" in flat
    flat = refused("epochs = 1.5")
    assert "epochsmustbeawholenumber,not1.5" in flat


def test_config_toml_reads_back_whatever_characters_a_path_holds(tmp_path: Path) -> None:
    from tutelage.training.run import config_settings, write_config

    odd = 'données/😀 tab\tquote" back\\ del\x7f.jsonl'
    config = RewardConfig(out=tmp_path / "run", base=f"models/{odd}", ensemble=2)
    write_config(config.out, method="reward", settings=config_settings(config),
                 data={"source": odd, "version_hash": None, "held_out": 0.2})  # fmt: skip
    saved = config_from_file(config.out / "config.toml", "reward", RewardConfig)
    assert saved["base"] == f"models/{odd}" and saved["ensemble"] == 2


def test_a_hold_out_that_leaves_nothing_to_train_on_is_refused(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", planted_pairs(2))
    out = tmp_path / "rm"
    result = CliRunner().invoke(
        app, ["train", "reward", str(data), "--out", str(out), "--holdout", "0.8"]
    )
    assert result.exit_code == 2
    flat = re.sub(r"[\s│╭╮╰╯─]+", "", result.output)
    assert "--holdout" in flat and "0.8of2distinctpromptsleavesnonetotrainon" in flat
    assert not out.exists()


def kill_at_first_checkpoint(method: str, data: Path, out: Path, flags: list[str]) -> Path:
    """Run `tutelage train METHOD` in a process killed (SIGKILL, as a crash or a lost
    machine stops it) once its first checkpoint is written; return the checkpoint."""
    command = [sys.executable, "-m", "tutelage", "train", method, str(data), "--out", str(out)]
    process = subprocess.Popen(
        [*command, *flags], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    state = out / "checkpoint" / "state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists(), "the run ended before its first checkpoint"
    assert not (out / "run.json").exists(), "the run finished before it could be killed"
    return state


def assert_same_weights(folder: Path, other: Path) -> None:
    from safetensors.torch import load_file

    mine, theirs = load_file(folder / "model.safetensors"), load_file(other / "model.safetensors")
    assert mine.keys() == theirs.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(mine[name], tensor, atol=1e-5, rtol=1e-5)


def test_a_run_killed_mid_training_resumes_to_the_same_model(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", planted_pairs(16))
    flags = ["--max-steps", "12", "--batch-size", "2", "--max-length", "64", "--lr", "1e-4"]
    out = tmp_path / "killed"
    state = kill_at_first_checkpoint("reward", data, out, [*flags, "--checkpoint-every", "4"])

    runner = CliRunner()
    # other settings would make another run under this one's name: refused, nothing touched
    config_before = (out / "config.toml").read_bytes()
    changed = runner.invoke(
        app, ["train", "reward", str(data), "--out", str(out), "--resume", "--lr", "2e-4"]
    )
    assert changed.exit_code != 0
    assert "lr 0.0001 in the checkpoint, 0.0002 now" in " ".join(changed.output.split())
    assert (out / "config.toml").read_bytes() == config_before and state.exists()
    # so is other data: the checkpoint's batches are positions in the pairs it trained on
    state_before = state.read_bytes()
    for edited in (planted_pairs(16)[::-1], [*planted_pairs(15), planted_pairs(17)[16]]):
        other = write_pairs(tmp_path / "other.jsonl", edited)
        refused = runner.invoke(app, ["train", "reward", str(other), "--out", str(out), "--resume"])
        assert refused.exit_code != 0
        assert "was trained on other data" in " ".join(refused.output.split())
        assert (out / "config.toml").read_bytes() == config_before
        assert state.read_bytes() == state_before

    resumed = runner.invoke(app, ["train", "reward", str(data), "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    straight = train_reward(
        RewardConfig(out=tmp_path / "straight", max_steps=12, batch_size=2, max_length=64, lr=1e-4),
        load_pairs(data),
        progress=False,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["loss"] for s in metrics["steps"]] == pytest.approx(
        [s["loss"] for s in straight.metrics["steps"]], abs=1e-5
    )
    assert_same_weights(out, tmp_path / "straight")
    assert not (out / "checkpoint").exists()
    record = json.loads((out / "run.json").read_text())
    assert (
        record["config_hash"]
        == json.loads((tmp_path / "straight" / "run.json").read_text())["config_hash"]
    )


def test_a_killed_dpo_run_resumes_to_the_same_policy(tmp_path: Path, smollm2_small: str) -> None:
    # the policy's optimiser state is keyed through its scorer wrapper, and the reference
    # log-probabilities come from the run's cache: both must carry over
    data = write_pairs(tmp_path / "pairs.jsonl", planted_pairs(12))
    flags = ["--base", smollm2_small, "--max-steps", "6", "--batch-size", "2", "--max-length",
             "64", "--lr", "1e-5", "--precision", "fp32", "--checkpoint-every", "2"]  # fmt: skip
    out = tmp_path / "killed"
    kill_at_first_checkpoint("dpo", data, out, flags)
    reference = (out / "reference_logps.pt").read_bytes()
    runner = CliRunner()
    resumed = runner.invoke(app, ["train", "dpo", str(data), "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert (out / "reference_logps.pt").read_bytes() == reference  # read, not computed again
    straight = tmp_path / "straight"
    done = runner.invoke(app, ["train", "dpo", str(data), "--out", str(straight), *flags])
    assert done.exit_code == 0, done.output
    losses = [[s["loss"] for s in json.loads((f / "metrics.json").read_text())["steps"]]
              for f in (out, straight)]  # fmt: skip
    assert losses[0] == pytest.approx(losses[1], abs=1e-5) and len(losses[0]) == 6
    assert losses[0][-1] < losses[0][0]  # it trained: the pairs' DPO loss fell
    assert_same_weights(out, straight)


def test_an_ensemble_scores_with_a_spread_and_lora_saves_an_adapter(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", planted_pairs(8))
    runner = CliRunner()
    out = tmp_path / "ensemble"
    trained = runner.invoke(
        app,
        ["train", "reward", str(data), "--out", str(out), "--ensemble", "2", "--lora",
         "--max-steps", "2", "--batch-size", "4", "--max-length", "64"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert json.loads((out / "ensemble.json").read_text())["members"] == ["member-0", "member-1"]
    for member in ("member-0", "member-1"):
        assert (out / member / "adapter_config.json").is_file()
    seeds = [config_from_file(out / m / "config.toml", "reward", RewardConfig)["seed"]
             for m in ("member-0", "member-1")]  # fmt: skip
    assert seeds == [0, 1]

    scores = tmp_path / "scores.jsonl"
    scored = runner.invoke(app, ["score", str(out), "--data", str(data), "--out", str(scores)])
    assert scored.exit_code == 0, scored.output
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert len(rows) == 16
    assert all(len(r["member_rewards"]) == 2 and r["reward_std"] > 0 for r in rows)
    mean = sum(rows[0]["member_rewards"]) / 2
    assert rows[0]["reward"] == pytest.approx(mean)


def test_a_stopped_ensemble_resumes_with_its_hold_out_and_keeps_finished_members(
    tmp_path: Path,
) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", planted_pairs(16))
    runner = CliRunner()
    out = tmp_path / "ensemble"
    trained = runner.invoke(
        app,
        ["train", "reward", str(data), "--out", str(out), "--ensemble", "3", "--holdout", "0.25",
         "--max-steps", "2", "--batch-size", "4", "--max-length", "64"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    held = (out / "heldout.jsonl").read_text()
    assert len(held.splitlines()) == 4
    assert config_from_file(out / "config.toml", "reward", RewardConfig)["ensemble"] == 3
    member_0 = (out / "member-0" / "run.json").read_text()
    expected = [(out / f"member-{m}" / "model.safetensors").read_bytes() for m in (1, 2)]

    # as a crash leaves it: member 1 stopped before its first checkpoint, member 2 never
    # started, and the ensemble's manifest, metrics and held-out file were never written
    config_1 = (out / "member-1" / "config.toml").read_bytes()
    for path in [out / "member-1", out / "member-2"]:
        for file in path.iterdir():
            if file.is_file():
                file.unlink()
        if path.name == "member-2":
            path.rmdir()
    (out / "member-1" / "config.toml").write_bytes(config_1)
    for name in ("ensemble.json", "metrics.json", "heldout.jsonl"):
        (out / name).unlink()

    # the hold-out is the run's: another is refused, and so are other settings
    other = runner.invoke(
        app, ["train", "reward", str(data), "--out", str(out), "--resume", "--holdout", "0.5"]
    )
    assert other.exit_code != 0 and "heldout0.25" in re.sub(r"[\s│╭╮╰╯─]+", "", other.output)
    faster = runner.invoke(
        app, ["train", "reward", str(data), "--out", str(out), "--resume", "--lr", "1e-3"]
    )
    assert faster.exit_code != 0
    assert "lr 0.0001 in its config.toml, 0.001 now" in " ".join(faster.output.split())
    # and other data: one answer changed, refused by member 0, which finished on the old
    edited = planted_pairs(16)
    edited[0] = TrainingPair(edited[0].prompt, "Sure!", edited[0].rejected)
    other = runner.invoke(
        app,
        ["train", "reward", str(write_pairs(tmp_path / "other.jsonl", edited)), "--out", str(out),
         "--resume"],
    )  # fmt: skip
    assert other.exit_code != 0 and "member-0" in other.output
    assert "this member was trained on other data" in " ".join(other.output.split())
    assert not (out / "member-1" / "run.json").exists()

    resumed = runner.invoke(app, ["train", "reward", str(data), "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "ensemble.json").read_text())["members"] == [
        "member-0", "member-1", "member-2"
    ]  # fmt: skip
    assert (out / "member-0" / "run.json").read_text() == member_0  # not trained again
    # the same 12 pairs as before the stop, not the held-out 4 as well: the same models
    resumed_models = [(out / f"member-{m}" / "model.safetensors").read_bytes() for m in (1, 2)]
    assert resumed_models == expected
    assert (out / "heldout.jsonl").read_text() == held


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_a_lora_reward_model_scores_what_it_learned_with_either_head(
    tmp_path: Path, pooling: str
) -> None:
    pairs = planted_pairs(16)
    config = RewardConfig(
        out=tmp_path / "rm", lora=True, pooling=pooling, max_steps=20, batch_size=4,
        max_length=64, lr=1e-3,
    )  # fmt: skip
    run = train_reward(config, PreferenceData(pairs=pairs, source="planted"), progress=False)
    assert run.metrics["final"]["mean_accuracy_last_10"] == 1.0
    scores = score_pairs(tmp_path / "rm", pairs)
    assert all(chosen > rejected + 1 for chosen, rejected in scores)


def test_a_decoder_reward_model_scores_padded_batches_like_single_sequences(
    tmp_path: Path, smollm2_small: str
) -> None:
    pairs = planted_pairs(6)
    config = RewardConfig(
        out=tmp_path / "rm", base=smollm2_small, max_steps=2, batch_size=2, lr=1e-5
    )
    run = train_reward(config, PreferenceData(pairs=pairs, source="planted"), progress=False)
    assert run.metrics["truncated"] == 0
    # pairs of different lengths: batched, most rows are padded on the right
    varied = [
        TrainingPair(p.prompt, p.chosen + " Really." * i, p.rejected, messages=p.messages)
        for i, p in enumerate(pairs)
    ]
    batched = score_pairs(tmp_path / "rm", varied, batch_size=6)
    one_by_one = score_pairs(tmp_path / "rm", varied, batch_size=1)
    assert [r for pair in batched for r in pair] == pytest.approx(
        [r for pair in one_by_one for r in pair], abs=1e-4
    )
    assert len({round(c, 4) for c, _ in batched}) == len(varied)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's own choice")
def test_auto_precision_trains_in_bf16_on_a_cpu_that_has_it_and_still_learns(
    tmp_path: Path,
) -> None:
    from tutelage.training.run import cpu_has_bf16

    pairs = planted_pairs(16)
    runs = {}
    for precision in ("auto", "fp32"):
        config = RewardConfig(
            out=tmp_path / precision, epochs=3, batch_size=4, max_length=64, precision=precision
        )
        runs[precision] = train_reward(config, PreferenceData(pairs=pairs, source="planted"))
    assert runs["auto"].metrics["precision"] == ("bf16" if cpu_has_bf16() else "no")
    assert runs["fp32"].metrics["precision"] == "no"
    for run in runs.values():  # the planted rule is learnt either way
        scores = score_pairs(run.out, planted_pairs(24)[16:], max_length=64)
        assert all(chosen > rejected for chosen, rejected in scores)
