"""What every training run shares: devices, the batch schedule, checkpoints, and the
files a finished run leaves (config.toml, metrics.json, loss.png, run.json).

The train functions (reward, DPO, SFT) call these top to bottom; none of them hides a
loop. One process or many: `Accelerator` (from accelerate) is a no-op on one device and
gives DDP/FSDP under ``accelerate launch``.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import resource
import subprocess
import time
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tutelage.files import write_text_whole, write_whole

__all__ = [
    "CHECKPOINT",
    "TrainingRun",
    "apply_lora",
    "batch_schedule",
    "check_common",
    "checkpoint_due",
    "code_version",
    "config_from_file",
    "config_hash",
    "config_settings",
    "data_record",
    "disable_dropout",
    "gathered_state",
    "holdout_from_file",
    "load_checkpoint",
    "load_optimizer_state",
    "make_accelerator",
    "make_optimizer",
    "open_run",
    "optimizer_state",
    "peak_memory_mb",
    "progress_bar",
    "refuse_other_data",
    "refuse_other_settings",
    "restore_rng",
    "run_metrics",
    "save_checkpoint",
    "save_model",
    "steps_per_epoch",
    "summarise_steps",
    "write_config",
    "write_run",
]

CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class TrainingRun:
    """A finished run: where it was written and what it measured."""

    out: Path
    metrics: dict[str, Any]


def config_settings(config: Any) -> dict[str, Any]:
    """Return the config as plain TOML-able values (paths as text, None left out)."""
    settings: dict[str, Any] = {}
    for key, value in asdict(config).items():
        if value is None:
            continue
        settings[key] = str(value) if isinstance(value, Path) else value
    return settings


def config_hash(settings: dict[str, Any]) -> str:
    """Return the sha256 of the settings that decide the result (not where it is written)."""
    relevant = {k: v for k, v in settings.items() if k not in {"out", "checkpoint_every"}}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # as written, not \u-escaped: JSON escapes a character beyond U+FFFF as a surrogate
    # pair, which TOML refuses; DEL is the one character TOML needs escaped and JSON not
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml(method: str, settings: dict[str, Any]) -> str:
    lines = [f"[{method}]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


# what config.toml records of the data beside the settings; `data_holdout` is the
# fraction of prompts held out, which a rerun or a resume must hold out again
DATA_KEYS = {"data", "data_version_hash", "data_holdout"}


def _section(path: Path, method: str) -> dict[str, Any]:
    """Return section ``[method]`` of a TOML file (the whole file when it has none)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the config: {exc}") from exc
    section = document.get(method, document if method not in document else {})
    if not isinstance(section, dict):
        raise ValueError(f"{path}: [{method}] must be a table")
    return section


def holdout_from_file(path: Path, method: str) -> float | None:
    """Return the `data_holdout` of section ``[method]`` of a config file, or None."""
    value = _section(path, method).get("data_holdout")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{path}: [{method}] data_holdout must be a number, not {value!r}")
    return None if value is None else float(value)


def config_from_file(path: Path, method: str, config_type: type[Any]) -> dict[str, Any]:
    """Return the settings of section ``[method]`` of a TOML file, checked against the
    fields of `config_type` (unknown keys are an error naming the file and the key)."""
    section = _section(path, method)
    known = {f.name for f in fields(config_type)} | DATA_KEYS
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) in [{method}]: {', '.join(unknown)}")
    settings = {k: v for k, v in section.items() if k not in DATA_KEYS}
    hints = typing.get_type_hints(config_type)
    for key, value in settings.items():
        expected = _kinds(hints[key])
        if not any(_fits(value, kind) for kind in expected):
            names = " or ".join(_KIND_NAMES.get(kind, kind.__name__) for kind in expected)
            raise ValueError(f"{path}: [{method}] {key} must be {names}, not {value!r}")
    return settings


# By hand rather than pydantic: its strict mode refuses a string for a Path field, its
# lax mode takes "no" for a bool, and these are the four kinds TOML settings have.
_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
_KIND_NAMES[Path] = "text"


def _kinds(hint: Any) -> tuple[Any, ...]:
    """Return the types a field's annotation allows, None left out (TOML has no null):
    `int | None` gives (int,)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(kind for kind in typing.get_args(hint) if kind is not type(None))
    return (hint,)


def _fits(value: Any, kind: Any) -> bool:
    """Return whether a TOML value suits a config field of type `kind`; TOML's true and
    false are Python bools, which are ints too, so they fit only a bool field."""
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int)
    if kind is float:
        return isinstance(value, int | float)
    if kind in (str, Path):
        return isinstance(value, str)
    return True  # a type TOML has no literal for: the config's own checks judge it


def check_common(config: Any) -> None:
    """Validate the settings every method shares (kept identical across methods)."""
    if config.max_steps is not None and config.max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, not {config.max_steps}")
    if config.epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {config.epochs}")
    if config.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {config.batch_size}")
    if config.max_length < 8:
        raise ValueError(f"max_length must be at least 8 tokens, not {config.max_length}")
    if not 0 < config.lr < 1:
        raise ValueError(f"lr must be between 0 and 1, not {config.lr}")
    if not 0 <= config.warmup < 1:
        raise ValueError(f"warmup must be a fraction of the steps in [0, 1), not {config.warmup}")
    if config.precision not in {"auto", "fp32", "bf16"}:
        raise ValueError(f"precision must be auto, fp32 or bf16, not {config.precision!r}")
    if config.checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be at least 0, not {config.checkpoint_every}")


def data_record(data: Any) -> dict[str, Any]:
    """Return where the training data came from, for metrics and the run record."""
    return {
        "source": data.source,
        "version": data.version_name,
        "version_hash": data.version_hash,
        "held_out": getattr(data, "held_out", None),
        "sha256": data.sha256,
    }


def apply_lora(model: Any, rank: int, task_type: str) -> Any:
    """Return `model` with LoRA adapters (rank `rank`, alpha 2*rank) on every linear
    layer; for a reward model the scalar head is trained in full and saved with them."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model,
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type=task_type),
    )


def disable_dropout(model: Any) -> None:
    """Set every dropout probability to 0: preference losses compare two forward passes,
    which dropout makes noisy, and on a CPU the masks cost more than the layers they
    drop from (TRL's trainers do the same by default)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def make_optimizer(model: Any, lr: float) -> Any:
    """Return AdamW over the trainable parameters; the fused kernel where torch has one
    for the device (fewer passes over memory, no temporary copies of every weight)."""
    import torch

    parameters = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(parameters, lr=lr, fused=True)


def make_schedule(optimizer: Any, total: int, warmup: float) -> Any:
    """Return the learning-rate schedule: linear warm-up over the first `warmup` fraction
    of the `total` steps, then linear decay to zero."""
    import torch

    warm = int(total * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, 1 - (step - warm) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def code_version() -> str:
    """Return the tutelage version, with the git commit (and "+dirty") when run from a
    checkout, so a run names the exact code that made it."""
    from tutelage import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit[:12]}{'.dirty' if dirty else ''}"


def cpu_has_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (Intel AMX or AVX-512 BF16): there bf16
    autocast trains MiniLM 2.4x faster than fp32 (benchmarks/README.md). Elsewhere bf16
    on a CPU is emulated and slower than fp32."""
    import torch

    # torch names these checks privately; without them, assume no
    checks = [
        getattr(torch.cpu, name, None)
        for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    return any(check is not None and bool(check()) for check in checks)


def device_has_bf16() -> bool:
    """True where training runs on a device with native bf16: a CUDA GPU that supports
    it or, without CUDA, a CPU with AMX or AVX-512 BF16."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_bf16()


def make_accelerator(precision: str) -> Any:
    """Return an `Accelerator`: bf16 autocast when asked for ("auto": where the device
    supports it natively, `device_has_bf16`), fp32 otherwise."""
    import torch
    from accelerate import Accelerator

    if precision not in {"auto", "fp32", "bf16"}:
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    bf16 = precision == "bf16" or (precision == "auto" and device_has_bf16())
    mixed = "bf16" if bf16 else "no"
    _forget_other_precision(mixed)
    return Accelerator(mixed_precision=mixed, cpu=not torch.cuda.is_available())


def _forget_other_precision(mixed: str) -> None:
    """Let one process train in bf16 and then score in fp32 (or the reverse).

    accelerate keeps one precision per process and refuses an `Accelerator` with
    another. In a single process (not under `accelerate launch` or torchrun) tutelage
    drops that state, which describes no live device or process group there; it has no
    public way to do so, hence the private call. Launched processes keep theirs.
    """
    from accelerate.state import AcceleratorState, PartialState

    if not AcceleratorState._shared_state or PartialState().num_processes > 1:
        return
    if AcceleratorState().mixed_precision != mixed:
        AcceleratorState._reset_state()


def batch_schedule(
    lengths: list[int], batch_size: int, seed: int, total: int, *, processes: int = 1, rank: int = 0
) -> Iterator[list[int]]:
    """Yield this process's batches for `total` steps: length-grouped, reshuffled each
    epoch (seed + epoch), the data repeated as needed. Deterministic, so a resumed run
    skips the steps it has done and sees the same batches after them."""
    from tutelage.training.data import length_grouped_batches

    step = 0
    epoch = 0
    while step < total:
        batches = length_grouped_batches(lengths, batch_size, seed + epoch)
        usable = len(batches) - len(batches) % processes or len(batches)
        for start in range(0, usable, processes):
            if step >= total:
                return
            yield batches[min(start + rank, len(batches) - 1)]
            step += 1
        epoch += 1


def steps_per_epoch(count: int, batch_size: int, processes: int = 1) -> int:
    """Return the optimiser steps one pass over `count` examples takes."""
    return max(1, math.ceil(count / batch_size) // processes)


def save_checkpoint(out: Path, accelerator: Any, state: dict[str, Any]) -> None:
    """Write `state` (model, optimiser, scheduler, step, per-step metrics, RNG) to
    ``out/checkpoint/state.pt`` atomically: a crash mid-write keeps the previous one."""
    import torch

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    folder = out / CHECKPOINT
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        **state,
        "rng": {"python": random.getstate(), "torch": torch.get_rng_state()},
        "saved_at": datetime.now(UTC).isoformat(),
    }
    write_whole(folder / "state.pt", lambda partial: torch.save(state, partial))


def open_run(out: Path, resume: bool, settings: dict[str, Any], data: Any) -> dict[str, Any] | None:
    """Return the checkpoint to resume from (None for a new run), refusing a new run in a
    folder that is not empty, a resume with no checkpoint, and a resume whose `settings`
    or `data` differ from the checkpoint's (other settings would make another run, and its
    config.toml would not rerun it; a different set of trained weights does not even
    load; other data would be drawn by the checkpoint's positions)."""
    state = load_checkpoint(out) if resume else None
    if resume and state is None:
        raise FileNotFoundError(f"{out} holds no checkpoint to resume from")
    if not resume and out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; pick a new --out folder")
    if state is not None:
        refuse_other_settings(out, "the checkpoint", state.get("settings", {}), settings)
        refuse_other_data(out, "the checkpoint", state.get("data", {}), data)
    return state


def refuse_other_data(out: Path, what: str, saved: dict[str, Any], data: Any) -> None:
    """Raise ValueError when `data` is not what `what` in `out` was trained on (by content,
    in order; a record from before data was hashed is not checked)."""
    trained = saved.get("sha256")
    if trained is not None and trained != data.sha256:
        raise ValueError(
            f"{out}: {what} was trained on other data (sha256 {trained[:12]}... from "
            f"{saved.get('source')}; {data.sha256[:12]}... from {data.source} now); --resume "
            "continues the same run on the same data: start a new --out to train on this"
        )


def refuse_other_settings(
    out: Path, what: str, saved: dict[str, Any], settings: dict[str, Any]
) -> None:
    """Raise ValueError naming each setting in which `settings` differ from those `what`
    in `out` was saved with (where and how often a run saves do not count)."""
    where = {"out", "checkpoint_every"}
    differ = sorted(
        k for k in (saved.keys() | settings.keys()) - where if saved.get(k) != settings.get(k)
    )
    if differ:
        shown = "; ".join(
            f"{k} {_setting(saved, k)} in {what}, {_setting(settings, k)} now" for k in differ
        )
        raise ValueError(
            f"{out}: {what} was saved with other settings ({shown}); --resume continues the "
            "same run with the same settings: start a new --out to change them"
        )


def _setting(settings: dict[str, Any], key: str) -> str:
    return repr(settings[key]) if key in settings else "not set"


def checkpoint_due(config: Any, step: int, total: int) -> bool:
    """Return whether a checkpoint is due after `step` (none after the last: the run ends)."""
    return bool(config.checkpoint_every) and step % config.checkpoint_every == 0 and step < total


def run_metrics(
    steps: list[dict[str, float]], train_seconds: float, tokens: int, accelerator: Any
) -> dict[str, Any]:
    """Return the figures every run reports; `tokens` is this process's count (summed
    over the processes here: every process must call this)."""
    import torch

    tokens = int(accelerator.reduce(torch.tensor(tokens, device=accelerator.device), "sum"))
    return {
        "steps": steps,
        "final": summarise_steps(steps),
        "train_seconds": train_seconds,
        "tokens": tokens,
        "tokens_per_second": tokens / train_seconds if train_seconds > 0 else 0.0,
        "peak_memory_mb": peak_memory_mb(accelerator.device),
        "device": str(accelerator.device),
        "processes": accelerator.num_processes,
        "precision": accelerator.mixed_precision,
    }


def load_checkpoint(out: Path) -> dict[str, Any] | None:
    """Return the state saved by `save_checkpoint` in `out`, or None when there is none."""
    import torch

    path = out / CHECKPOINT / "state.pt"
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state


def restore_rng(state: dict[str, Any] | None) -> None:
    """Put the random generators back as they were at the checkpoint (dropout draws and
    all), so a resumed run goes on exactly as the uninterrupted one would have."""
    import torch

    if state is not None:
        random.setstate(state["rng"]["python"])
        torch.set_rng_state(state["rng"]["torch"])


def gathered_state(accelerator: Any, wrapped: Any, prefix: str = "") -> dict[str, Any]:
    """Return the trained model's full state dict, gathered from every process (FSDP
    shards it), keys without the wrapper's `prefix`. Every process must call this."""
    state: dict[str, Any] = accelerator.get_state_dict(wrapped)
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def optimizer_state(model: Any, optimizer: Any) -> dict[str, Any]:
    """Return the optimiser's whole state, keyed by parameter name, for a checkpoint.

    Under FSDP each process holds only its shard of the state, so the shards are
    gathered (every process must call this; the first gets the whole, the others {}).
    torch's distributed state-dict functions do that for FSDP and DDP alike, and work on
    a plain module too.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state: dict[str, Any] = get_optimizer_state_dict(model, _unwrapped(optimizer), options=options)
    return state


def load_optimizer_state(model: Any, optimizer: Any, saved: dict[str, Any]) -> None:
    """Put `saved` (from `optimizer_state`) into the prepared optimiser, each process
    taking its own shard under FSDP."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if all(isinstance(key, int) for group in saved["param_groups"] for key in group["params"]):
        # keyed by position: a checkpoint written before optimizer_state (whole without FSDP)
        optimizer.load_state_dict(saved)
        return
    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, _unwrapped(optimizer), saved, options=options)


def _unwrapped(optimizer: Any) -> Any:
    """Return the torch optimiser inside accelerate's wrapper (or `optimizer` itself)."""
    return getattr(optimizer, "optimizer", optimizer)


def save_model(
    accelerator: Any, wrapped: Any, model: Any, tokenizer: Any, out: Path, prefix: str = ""
) -> None:
    """Save the model (full weights, or LoRA adapters naming their base) and tokenizer to
    `out` as transformers loads them. Every process must call this; the first writes."""
    state = gathered_state(accelerator, wrapped, prefix)
    if accelerator.is_main_process:
        model.save_pretrained(out, state_dict=state)
        tokenizer.save_pretrained(out)


def peak_memory_mb(device: Any) -> float:
    """Return the peak memory of this process: allocated on a GPU, resident on a CPU."""
    import torch

    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device)) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def progress_bar(label: str, *, enabled: bool, loss: bool = True) -> Any:
    """Return a rich progress bar showing steps, the last loss (unless `loss` is False:
    a pass that trains nothing) and the time left."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    counts = "{task.completed}/{task.total}"
    return Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn(counts + " loss {task.fields[loss]:.4f}" if loss else counts),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def summarise_steps(steps: list[dict[str, float]]) -> dict[str, float]:
    """Return the last step's loss and accuracy and their means over the last ten steps."""
    last = steps[-10:]
    summary = {"loss": steps[-1]["loss"], "mean_loss_last_10": _mean(s["loss"] for s in last)}
    if "accuracy" in steps[-1]:
        summary["accuracy"] = steps[-1]["accuracy"]
        summary["mean_accuracy_last_10"] = _mean(s["accuracy"] for s in last)
    return summary


def _mean(values: Any) -> float:
    items = [float(v) for v in values]
    return sum(items) / len(items)


def write_config(out: Path, *, method: str, settings: dict[str, Any], data: dict[str, Any]) -> None:
    """Write config.toml: the settings under ``[method]`` and the data they ran on. Written
    when a run starts, so `--resume` finds it, and again when it ends."""
    out.mkdir(parents=True, exist_ok=True)
    data_settings = {"data": data["source"]}
    if data.get("version_hash"):
        data_settings["data_version_hash"] = data["version_hash"]
    if data.get("held_out") is not None:
        data_settings["data_holdout"] = data["held_out"]
    write_text_whole(out / "config.toml", _toml(method, {**settings, **data_settings}))


def write_run(
    out: Path,
    *,
    method: str,
    settings: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, Any],
    loss_label: str,
    started: float,
) -> None:
    """Write config.toml (everything to rerun), metrics.json, loss.png and run.json (the
    record tying the model to its data version, config hash and code version)."""
    import torch
    import transformers

    write_config(out, method=method, settings=settings, data=data)
    write_text_whole(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _plot(metrics["steps"], out / "loss.png", loss_label, method)
    record = {
        "method": method,
        "data": data,
        "config_hash": config_hash(settings),
        "code_version": code_version(),
        "base": settings.get("base"),
        "started": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "host": platform.node(),
        "device": metrics.get("device"),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "final": metrics.get("final"),
    }
    write_text_whole(out / "run.json", json.dumps(record, indent=2) + "\n")


def _plot(steps: list[dict[str, float]], path: Path, label: str, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([s["step"] for s in steps], [s["loss"] for s in steps], linewidth=1)
    axis.set_xlabel("step")
    axis.set_ylabel(label)
    axis.set_title(f"{method} training loss")
    figure.tight_layout()
    write_whole(path, lambda partial: figure.savefig(partial, dpi=100, format="png"))
    plt.close(figure)


def elapsed(since: float) -> float:
    """Return the seconds since `since` (a `time.perf_counter()` value)."""
    return time.perf_counter() - since
