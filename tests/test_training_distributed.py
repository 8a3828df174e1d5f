"""The same commands on several processes and on a GPU.

Two processes under `accelerate launch` (whose --multi_gpu launcher is torchrun) run
here on CPU with gloo, so the DDP path (sharded batches, synchronised gradients, one
writer) is tested on every machine. The CUDA tests (bf16, two GPUs) run where CUDA is
present.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

TOPICS = ["tea", "rain", "trains", "maps", "bread", "chess", "boats", "rivers"]


def pairs_file(path: Path, count: int = 16) -> Path:
    rows = [
        {
            "prompt": f"Tell me something about {TOPICS[i % 8]}, please ({i}).",
            "chosen": f"Thank you for asking! Happy to help: {TOPICS[i % 8]} are lovely.",
            "rejected": "No. Go away, that is a stupid question and I will not answer it.",
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(processes: int, *args: str, cpu: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `tutelage ARGS` under `accelerate launch` as the README shows, or one process
    under torchrun (accelerate's --multi_gpu wants two or more)."""
    folder = str(Path(sys.executable).parent)
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    if cpu:
        environment["CUDA_VISIBLE_DEVICES"] = ""
    if processes > 1:
        accelerate = shutil.which("accelerate", path=folder)
        assert accelerate is not None
        launcher = [
            accelerate, "launch", "--multi_gpu", f"--num_processes={processes}",
            "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no",
            f"--main_process_port={free_port()}",
        ]  # fmt: skip
    else:
        torchrun = shutil.which("torchrun", path=folder)
        assert torchrun is not None
        launcher = [torchrun, "--nproc_per_node=1", f"--master_port={free_port()}"]
    command = [*launcher, "-m", "tutelage", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=1800)


def test_two_processes_train_one_reward_model_and_one_writes_it(
    tmp_path: Path,
) -> None:
    data = pairs_file(tmp_path / "pairs.jsonl")
    out = tmp_path / "ddp"
    flags = ["--max-steps", "3", "--batch-size", "2", "--max-length", "64", "--lr", "1e-4"]
    result = launch(2, "train", "reward", str(data), "--out", str(out), *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["processes"] == 2 and len(metrics["steps"]) == 3
    # each step saw two batches of two pairs, one per process: twice the tokens of one
    single = tmp_path / "single"
    alone = launch(1, "train", "reward", str(data), "--out", str(single), *flags)
    assert alone.returncode == 0, alone.stderr[-3000:]
    one = json.loads((single / "metrics.json").read_text(encoding="utf-8"))
    assert one["processes"] == 1
    assert metrics["tokens"] > one["tokens"]
    # exactly one process wrote the run and reported it
    assert result.stdout.count("trained on") == 1
    assert (out / "model.safetensors").is_file() and (out / "run.json").is_file()


def test_two_processes_share_the_dpo_reference_pass_and_get_the_whole_table(
    tmp_path: Path, smollm2_small: str
) -> None:
    from tutelage.training import load_pairs
    from tutelage.training.dpo import policy_logps

    data = pairs_file(tmp_path / "pairs.jsonl", count=10)
    out = tmp_path / "ddp-dpo"
    flags = ["--base", smollm2_small, "--max-steps", "2", "--batch-size", "2",
             "--max-length", "64", "--precision", "fp32"]  # fmt: skip
    result = launch(2, "train", "dpo", str(data), "--out", str(out), *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["processes"] == 2 and len(metrics["steps"]) == 2
    # each process scored half the pairs; the table written is every pair's, as one
    # process computes it alone
    shared = torch.load(out / "reference_logps.pt")
    alone = policy_logps(smollm2_small, load_pairs(data).pairs, max_length=64)
    assert shared.shape == (10, 2) and bool((shared < 0).all())
    torch.testing.assert_close(shared, alone, atol=1e-3, rtol=1e-4)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
def test_dpo_on_a_gpu_runs_in_bf16(tmp_path: Path, smollm2_small: str) -> None:
    from tutelage.training import DPOConfig, PreferenceData, TrainingPair, train_dpo

    pairs = [
        TrainingPair(
            f"user: {t}?", f"{t} is nice, thank you!", f"{t}. Go away.", None, (("user", f"{t}?"),)
        )
        for t in TOPICS
    ]
    config = DPOConfig(out=tmp_path / "dpo", base=smollm2_small, max_steps=2, batch_size=4)
    run = train_dpo(config, PreferenceData(pairs=pairs, source="planted"), progress=False)
    assert run.metrics["device"].startswith("cuda")
    assert run.metrics["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "no")
    assert run.metrics["peak_memory_mb"] > 0


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_under_accelerate(tmp_path: Path, smollm2_small: str) -> None:
    data = pairs_file(tmp_path / "pairs.jsonl")
    out = tmp_path / "ddp"
    result = launch(
        2, "train", "dpo", str(data), "--out", str(out), "--base", smollm2_small,
        "--max-steps", "2", "--batch-size", "2", cpu=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["processes"] == 2 and metrics["device"].startswith("cuda")


@pytest.mark.cuda
@cuda
def test_a_reward_model_scores_on_the_gpu_as_on_the_cpu(tmp_path: Path) -> None:
    from tutelage.training import (
        PreferenceData,
        RewardConfig,
        load_pairs,
        score_pairs,
        train_reward,
    )

    pairs = load_pairs(pairs_file(tmp_path / "pairs.jsonl", count=8)).pairs
    config = RewardConfig(out=tmp_path / "rm", max_steps=2, batch_size=4, precision="fp32")
    train_reward(config, PreferenceData(pairs=pairs, source="planted"), progress=False)
    on_gpu = score_pairs(tmp_path / "rm", pairs)
    # the same model on the CPU, by hiding the GPU from a fresh process
    code = (
        "import json, sys; from tutelage.training import load_pairs, score_pairs;"
        f"print(json.dumps(score_pairs({str(tmp_path / 'rm')!r}, "
        f"load_pairs({str(tmp_path / 'pairs.jsonl')!r}).pairs)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=1200,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    on_cpu = json.loads(result.stdout.splitlines()[-1])
    assert [r for p in on_gpu for r in p] == pytest.approx([r for p in on_cpu for r in p], abs=1e-3)
