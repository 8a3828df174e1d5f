"""What every generation back end offers: n completions for each of a batch of prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tutelage.records import Completion, Prompt

__all__ = ["GenerationBackend", "GenerationError", "check_settings"]


class GenerationError(RuntimeError):
    """Generation failed for a reason the user can act on (server down, bad answer)."""


def check_settings(*, n: int, temperature: float, max_new_tokens: int) -> None:
    """Raise ValueError for settings no back end can honour."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must not be negative, got {temperature}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")


@runtime_checkable
class GenerationBackend(Protocol):
    """A source of completions: a local model or a server speaking the OpenAI chat API."""

    @property
    def model_id(self) -> str:
        """Return the name completions are attributed to."""
        ...

    @property
    def model_version(self) -> str:
        """Return what distinguishes these weights from others under the same name."""
        ...

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_new_tokens: int = 256,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """Return, in prompt order, `n` completions for each prompt.

        `temperature` 0 means greedy decoding. Each Completion's `generation`
        records the settings used and the back end ("transformers" or "openai").
        """
        ...
