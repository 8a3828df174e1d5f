"""Score answers one at a time with a loaded reward model (or each member of an ensemble).

`score_pairs` reads a pair as training did (both answers cut to one budget); an audit
scores answers on their own, so that an answer changed by a perturbation is read
exactly as the unchanged one was and only the change can move its reward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tutelage.training.data import TrainingPair, encode_answer, pad_batch
from tutelage.training.reward import ensemble_members, load_for_scoring

__all__ = ["RewardScorer"]

# (prompt, answer) in, the model's inputs out (an encoder's token types included)
Encoder = Callable[[TrainingPair, str], dict[str, list[int]]]


class RewardScorer:
    """The members of the reward model at `model_dir`, loaded once, scoring answers.

    `score` returns one list of rewards per member (one member for a single model).
    """

    def __init__(self, model_dir: str | Path, *, max_length: int = 256, batch_size: int = 16):
        import torch

        self.folder = Path(model_dir)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder} is not a model folder")
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.members = []
        for member in ensemble_members(self.folder):
            tokenizer, model = load_for_scoring(member)
            model.to(self.device).eval()
            self.members.append((tokenizer, model))

    def _encoder(self, tokenizer: Any) -> Encoder:
        if not getattr(tokenizer, "chat_template", None):
            return lambda pair, answer: encode_answer(
                tokenizer, pair.prompt, answer, self.max_length
            )[0]
        from tutelage.training.sequences import encode_answer_ids, encode_prompt, fit_group

        prompts: dict[tuple[str, object], list[int]] = {}

        def encode(pair: TrainingPair, answer: str) -> dict[str, list[int]]:
            key = (pair.prompt, pair.messages)
            if key not in prompts:
                prompts[key] = encode_prompt(tokenizer, pair.messages, pair.prompt)
            group = fit_group(prompts[key], [encode_answer_ids(tokenizer, answer)], self.max_length)
            ids = group.prompt + group.answers[0]
            return {"input_ids": ids, "attention_mask": [1] * len(ids)}

        return encode

    def score(self, answers: Sequence[tuple[TrainingPair, str]]) -> list[list[float]]:
        """Return, per member, the reward of each (pair whose prompt it answers, answer)."""
        import torch

        found = []
        for tokenizer, model in self.members:
            encode = self._encoder(tokenizer)
            encodings = [encode(pair, answer) for pair, answer in answers]
            # batches of like length: a batch padded to its longest costs the padding too
            order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]["input_ids"]))
            rewards = [0.0] * len(encodings)
            pad = int(tokenizer.pad_token_id)
            with torch.no_grad():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    batch = pad_batch([encodings[i] for i in chunk], pad)
                    logits = model(**{k: v.to(self.device) for k, v in batch.items()}).logits
                    for i, reward in zip(chunk, logits.squeeze(-1).float().tolist(), strict=True):
                        rewards[i] = reward
            found.append(rewards)
        return found

    def score_pairs(self, pairs: Sequence[TrainingPair]) -> list[list[tuple[float, float]]]:
        """Return, per member, the (chosen reward, rejected reward) of each pair."""
        answers = [(p, p.chosen) for p in pairs] + [(p, p.rejected) for p in pairs]
        n = len(pairs)
        return [list(zip(rewards[:n], rewards[n:], strict=True)) for rewards in self.score(answers)]
