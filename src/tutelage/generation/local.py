"""Generate completions with a local transformers causal LM, batched on CPU or GPU.

torch and transformers are imported when the model is first used, never when this
module is imported: the web app imports tutelage.generation and must stay light.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutelage.generation.backend import GenerationError, check_settings
from tutelage.generation.bundled import (
    DEFAULT_MODEL,
    ModelUnavailableError,
    bundled_names,
    model_path,
)
from tutelage.generation.manifest import file_sha256, manifest_version, read_manifest
from tutelage.records import Completion, Prompt

if TYPE_CHECKING:
    import torch

__all__ = ["TransformersBackend"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _folder_version(folder: Path) -> str:
    """Return a short hash of the folder's config and weights.

    Hashing the weights (not just the config) keeps two fine-tunes of one base
    model apart: they share a config byte for byte.
    """
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "config.json" or path.suffix in _WEIGHT_SUFFIXES:
            digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()[:12]


class TransformersBackend:
    """A local causal LM: a bundled model name or a transformers folder on disk.

    The model loads on the first call to `generate`. Prompts are rendered with the
    tokenizer's chat template and generated `batch_size` at a time, left-padded.
    Sampling (temperature > 0) draws from the full distribution scaled by
    temperature, as the OpenAI API does; temperature 0 is greedy decoding.
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        batch_size: int = 8,
        device: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self._device_name = device
        self._loaded: tuple[Any, Any] | None = None
        self._version: str | None = None
        # One generation at a time: seeding sets torch's global random state.
        self._lock = threading.Lock()
        if isinstance(model, str) and model in bundled_names("causal-lm"):
            self.folder = model_path(model)
            self._model_id = model
        elif isinstance(model, str) and model in bundled_names():
            raise ModelUnavailableError(
                f"bundled model {model!r} is an encoder: it cannot generate text"
            )
        else:
            self.folder = Path(model).expanduser()
            if not (self.folder / "config.json").is_file():
                raise ModelUnavailableError(
                    f"{str(model)!r} is neither a bundled model "
                    f"({', '.join(bundled_names('causal-lm'))}) nor a folder with a config.json"
                )
            manifest = read_manifest(self.folder)
            named = manifest.get("name") if manifest else None
            self._model_id = named if isinstance(named, str) else self.folder.resolve().name

    @property
    def model_id(self) -> str:
        """Return the bundled name, the manifest's name, or the folder's name."""
        return self._model_id

    @property
    def model_version(self) -> str:
        """Return a 12-hex-digit hash identifying the exact files of the model."""
        if self._version is None:
            manifest = read_manifest(self.folder)
            if manifest is not None:
                self._version = manifest_version(manifest)
            else:
                self._version = _folder_version(self.folder)
        return self._version

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self._device_name or ("cuda" if torch.cuda.is_available() else "cpu")
            tokenizer: Any = AutoTokenizer.from_pretrained(self.folder)
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model: Any = AutoModelForCausalLM.from_pretrained(self.folder, dtype="auto")
            model.to(device)
            model.eval()
            self._loaded = (tokenizer, model)
        return self._loaded

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_new_tokens: int = 256,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """Return `n` completions for each prompt, in prompt order.

        With a seed, the same call (same prompts, settings and batch size) returns
        the same texts; the global torch random state is left as it was.
        """
        check_settings(n=n, temperature=temperature, max_new_tokens=max_new_tokens)
        if not prompts:
            return []
        with self._lock:
            return self._generate_all(prompts, n, temperature, max_new_tokens, seed)

    def _generate_all(
        self,
        prompts: Sequence[Prompt],
        n: int,
        temperature: float,
        max_new_tokens: int,
        seed: int | None,
    ) -> list[list[Completion]]:
        import torch

        tokenizer, model = self._load()
        settings: dict[str, Any] = {
            "backend": "transformers",
            "temperature": temperature,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
            "do_sample": temperature > 0,
        }
        devices = [model.device] if model.device.type == "cuda" else []
        results: list[list[Completion]] = []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                texts = self._generate_batch(tokenizer, model, batch, n, settings)
                for choices in texts:
                    results.append(
                        [
                            Completion(
                                text=text,
                                model_id=self.model_id,
                                model_version=self.model_version,
                                generation={**settings, "finish_reason": finish},
                            )
                            for text, finish in choices
                        ]
                    )
        return results

    def _generate_batch(
        self,
        tokenizer: Any,
        model: Any,
        batch: Sequence[Prompt],
        n: int,
        settings: dict[str, Any],
    ) -> list[list[tuple[str, str]]]:
        """Return (text, finish reason) pairs: `n` for each prompt of the batch."""
        rendered = [
            tokenizer.apply_chat_template(
                [message.model_dump() for message in prompt.messages],
                tokenize=False,
                add_generation_prompt=True,
            )
            for prompt in batch
        ]
        # The template already wrote the special tokens; adding them again would
        # put a second BOS in front of some models' prompts.
        encoded = tokenizer(
            rendered, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        options: dict[str, Any] = {
            "max_new_tokens": settings["max_new_tokens"],
            "pad_token_id": tokenizer.pad_token_id,
        }
        copies = n
        if settings["do_sample"]:
            options.update(
                do_sample=True,
                temperature=settings["temperature"],
                top_k=0,
                top_p=1.0,
                num_return_sequences=n,
            )
        else:
            # Greedy decoding gives one answer; n copies of it are the honest n answers.
            options.update(do_sample=False)
            copies = 1
        try:
            output = model.generate(**encoded, **options)
        except RuntimeError as error:
            raise GenerationError(f"generation with {self.model_id} failed: {error}") from error
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        finishes = _finish_reasons(new_tokens, model.generation_config.eos_token_id)
        rows = [(text.strip(), finish) for text, finish in zip(texts, finishes, strict=True)]
        return [
            [rows[index * copies + (j if copies > 1 else 0)] for j in range(n)]
            for index in range(len(batch))
        ]


def _finish_reasons(new_tokens: torch.Tensor, eos: int | list[int] | None) -> list[str]:
    """Return "stop" for rows that produced an end-of-sequence token, else "length"."""
    import torch

    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    if not eos_ids:
        return ["length"] * new_tokens.shape[0]
    stopped = torch.isin(new_tokens, torch.tensor(eos_ids, device=new_tokens.device)).any(dim=1)
    return ["stop" if bool(flag) else "length" for flag in stopped]
