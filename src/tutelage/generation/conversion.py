"""Turn a quantised GGUF checkpoint into a plain float32 transformers folder.

transformers can read GGUF directly, but only by dequantising every tensor on each
load (seconds) and the result stays flagged as quantised, which training code
refuses to fine-tune. Converting once gives a folder every tool loads as-is.
torch and transformers are imported inside the functions: importing this module
must stay cheap.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tutelage.generation.manifest import (
    file_sha256,
    folder_checksums,
    safetensors_parameters,
    write_manifest,
)

__all__ = ["CONVERSION_STEPS", "convert_gguf", "gguf_parameters"]

CONVERSION_STEPS = ("hash source", "load GGUF", "copy weights", "save", "verify")

StepCallback = Callable[[str], None]


def gguf_parameters(path: Path) -> int:
    """Return the number of weights in a GGUF file, counted from its tensor shapes."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return sum(int(tensor.n_elements) for tensor in reader.tensors)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own tqdm bars, which would garble our progress display.

    Most obey transformers' switch; the GGUF dequantiser's bar does not, and tqdm
    reads sys.stderr when a bar starts, so stderr is swapped meanwhile.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def convert_gguf(
    source: Path,
    destination: Path,
    *,
    name: str,
    licence: str,
    on_step: StepCallback,
) -> dict[str, Any]:
    """Write a float32 transformers folder for the GGUF file `source` into `destination`.

    Calls `on_step` with each name of CONVERSION_STEPS as that step begins, and
    returns the manifest it wrote (checksums of every file, parameter count, source).
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    on_step("hash source")
    source_sha256 = file_sha256(source)

    on_step("load GGUF")
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        quantised = AutoModelForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, dtype=torch.float32
        )

    on_step("copy weights")
    config = quantised.config
    # The GGUF loader marks the model as quantised; a plain folder must not claim that.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = config.eos_token_id
        tokenizer.pad_token = tokenizer.eos_token
    config.pad_token_id = pad_token_id
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        config, dtype=torch.float32
    )
    plain.load_state_dict(quantised.state_dict(), strict=True)
    plain.generation_config = quantised.generation_config
    plain.generation_config.pad_token_id = pad_token_id
    expected_parameters = sum(p.numel() for p in plain.parameters())
    del quantised

    on_step("save")
    with _quiet_transformers():
        plain.save_pretrained(destination)
        tokenizer.save_pretrained(destination)
    del plain

    on_step("verify")
    saved_config = json.loads((destination / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in saved_config:
        raise RuntimeError(f"conversion of {source.name} left a quantization flag in config")
    parameters = safetensors_parameters(sorted(destination.glob("*.safetensors")))
    if parameters != expected_parameters:
        raise RuntimeError(
            f"conversion of {source.name} saved {parameters} weights, expected "
            f"{expected_parameters}"
        )
    manifest: dict[str, Any] = {
        "name": name,
        "source_file": source.name,
        "source_sha256": source_sha256,
        "files": folder_checksums(destination),
        "parameters": parameters,
        "licence": licence,
        "dtype": "float32",
        "transformers_version": transformers.__version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_manifest(destination, manifest)
    return manifest
