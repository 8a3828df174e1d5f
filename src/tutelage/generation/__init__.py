"""Generate candidate completions for experts to judge, locally or from a server.

A model is named by one string, the same everywhere (CLI, config, web app):

- a bundled model name, e.g. ``smollm2-135m-instruct`` (run ``tutelage models
  prepare`` once first);
- a folder holding a transformers causal LM, e.g. ``runs/dpo-3/model``;
- an OpenAI-compatible server: ``http(s)://HOST[:PORT][/v1][#MODEL]``, e.g.
  ``http://127.0.0.1:8001/v1#qwen2``. The fragment names the served model; without
  one, the first model the server lists at ``/v1/models`` is used. The API key, if
  the server wants one, comes from $OPENAI_API_KEY.

Importing this package never imports torch or transformers; a local model loads
them when it first generates.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from tutelage.generation.backend import GenerationBackend, GenerationError
from tutelage.generation.bundled import (
    DEFAULT_MODEL,
    BundledModel,
    ModelUnavailableError,
    Preparation,
    bundled_models,
    bundled_names,
    model_path,
    models_home,
    prepare,
    prepare_model,
)
from tutelage.generation.local import TransformersBackend
from tutelage.generation.openai_api import OpenAIBackend, served_models
from tutelage.records import Completion, Prompt

__all__ = [
    "DEFAULT_MODEL",
    "BundledModel",
    "GenerationBackend",
    "GenerationError",
    "ModelUnavailableError",
    "OpenAIBackend",
    "Preparation",
    "TransformersBackend",
    "backend_for",
    "bundled_models",
    "bundled_names",
    "generate",
    "model_path",
    "models_home",
    "prepare",
    "prepare_model",
    "served_models",
]


def backend_for(model: str) -> GenerationBackend:
    """Return the back end a model string names (see the package docstring for the syntax)."""
    if model.startswith(("http://", "https://")):
        url, _, name = model.partition("#")
        if not name:
            listed = served_models(url)
            if not listed:
                raise GenerationError(f"{url} lists no models; name one as {url}#MODEL")
            name = listed[0]
        return OpenAIBackend(url, name)
    return TransformersBackend(model)


@functools.lru_cache(maxsize=2)
def _cached_backend(model: str, models: Path) -> GenerationBackend:
    # A local model takes seconds to load; repeated calls should not pay that again.
    # `models` is part of the key: the same name means another folder elsewhere.
    return backend_for(model)


def generate(
    prompts: Sequence[Prompt],
    n: int = 1,
    temperature: float = 0.7,
    max_new_tokens: int = 256,
    seed: int | None = None,
    *,
    model: str = DEFAULT_MODEL,
) -> list[list[Completion]]:
    """Return `n` completions for each prompt from `model`, in prompt order.

    The two most recently used back ends stay loaded between calls.
    """
    backend = _cached_backend(model, models_home())
    return backend.generate(
        prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
    )
