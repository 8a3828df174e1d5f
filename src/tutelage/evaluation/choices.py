"""Score the options of multiple-choice items by their log-probability under a policy.

Deterministic (no sampling): each option's score is the sum of its tokens' log-
probabilities as the assistant's answer to the conversation. The conversation is run
once per item and its cache shared by the item's options, which go through together
as one batch; items are taken longest first, so memory peaks at the start.

`ChoiceScorer` is the interface; tests inject a scorer with known log-probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tutelage.evaluation.errors import EvaluationError, first_line

__all__ = ["ChoiceRequest", "ChoiceScorer", "LocalChoiceScorer", "open_policy"]

Messages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ChoiceRequest:
    """A conversation ending in the user's turn, and the answers to score after it."""

    messages: Messages
    options: tuple[str, ...]


class ChoiceScorer(Protocol):
    name: str

    def score(
        self, requests: Sequence[ChoiceRequest], progress: Callable[[int], None] | None = None
    ) -> list[list[float]]:
        """Return the log-probability of each option of each request."""


class LocalChoiceScorer:
    """A causal language model in a local transformers folder (or a LoRA adapter on one)."""

    def __init__(self, folder: Path, name: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name or str(folder)
        adapter = folder / "adapter_config.json"
        try:
            if adapter.is_file():
                import json

                from peft import PeftModel

                base = json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"]
                model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
                model = PeftModel.from_pretrained(model, folder).merge_and_unload()
            else:
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError, KeyError) as error:
            raise EvaluationError(
                f"{folder} is not a causal language model: {first_line(error)}"
            ) from None
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model.to(self.device).eval()
        pad = self.tokenizer.pad_token_id
        self.pad = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    def _prompt(self, messages: Messages) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            rendered = self.tokenizer.apply_chat_template(
                [{"role": r, "content": c} for r, c in messages],
                add_generation_prompt=True,
                tokenize=False,
            )
        else:
            rendered = "".join(f"{r}: {c}\n" for r, c in messages) + "assistant:"
        return list(self.tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def _options(self, options: Sequence[str]) -> list[list[int]]:
        found = [list(self.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in options]
        if not all(found):
            raise EvaluationError("an option has no tokens")
        return found

    def score(
        self, requests: Sequence[ChoiceRequest], progress: Callable[[int], None] | None = None
    ) -> list[list[float]]:
        import torch

        prompts = [self._prompt(r.messages) for r in requests]
        found: list[list[float]] = [[] for _ in requests]
        order = sorted(range(len(requests)), key=lambda i: -len(prompts[i]))
        with torch.inference_mode():
            for done, i in enumerate(order, 1):
                found[i] = self._one(prompts[i], self._options(requests[i].options))
                if progress is not None:
                    progress(done)
        return found

    def _one(self, prompt: list[int], options: list[list[int]]) -> list[float]:
        import torch

        # the prompt's last position is the only one whose next-token scores are read
        first = self.model(
            input_ids=torch.tensor([prompt], device=self.device), use_cache=True, logits_to_keep=1
        )
        start = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
        totals = [float(start[o[0]]) for o in options]
        longest = max(len(o) for o in options)
        if longest == 1:
            return totals
        count = len(options)
        cache = first.cache if hasattr(first, "cache") else first.past_key_values
        cache.batch_repeat_interleave(count)
        ids = torch.full((count, longest), self.pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((count, len(prompt) + longest), dtype=torch.long, device=self.device)
        mask[:, : len(prompt)] = 1
        for k, option in enumerate(options):
            ids[k, : len(option)] = torch.tensor(option, device=self.device)
            mask[k, len(prompt) : len(prompt) + len(option)] = 1
        rest = self.model(input_ids=ids, attention_mask=mask, cache=cache)
        logprobs = torch.log_softmax(rest.logits.float(), dim=-1)
        for k, option in enumerate(options):
            following = torch.tensor(option[1:], device=self.device)
            steps = torch.arange(len(option) - 1, device=self.device)
            totals[k] += float(logprobs[k, steps, following].sum())
        return totals


def open_policy(ref: str) -> LocalChoiceScorer:
    """Return a scorer for `ref`: a training run or transformers folder, or a bundled
    model name. An OpenAI-compatible ``URL#model`` is refused: multiple-choice scoring
    needs every option's log-probability, which chat endpoints do not give."""
    from tutelage.generation.bundled import bundled_names, model_path

    if "://" in ref:
        raise EvaluationError(
            f"{ref}: scoring options needs their log-probabilities, which an OpenAI-compatible "
            "chat endpoint does not return; evaluate a local folder or bundled model"
        )
    if ref in bundled_names():
        return LocalChoiceScorer(model_path(ref), name=ref)
    folder = Path(ref)
    if not folder.is_dir():
        raise EvaluationError(f"no model folder at {ref} (nor a bundled model of that name)")
    markers = ("config.json", "adapter_config.json")
    if not any((folder / m).is_file() for m in markers):
        raise EvaluationError(f"{folder} is not a model folder (no {' or '.join(markers)})")
    config = folder / "config.json"
    if config.is_file():
        try:
            kinds = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        except ValueError as error:
            raise EvaluationError(f"{config}: not JSON ({error})") from None
        if kinds and not any(str(k).endswith("ForCausalLM") for k in kinds):
            what = (
                "a reward model (a sequence classifier)"
                if any(str(k).endswith("ForSequenceClassification") for k in kinds)
                else f"a {', '.join(map(str, kinds))}"
            )
            raise EvaluationError(f"{folder} is {what}, not a causal language model")
    return LocalChoiceScorer(folder)
