"""Token rows for causal language models: prompts with one or more answers, no padding
compute wasted, and the summed log-probability of each answer.

A row holds one prompt followed by its answers, e.g. ``[prompt][chosen][rejected]`` for
DPO: every answer attends to the prompt and to itself but never to another answer, and
its position ids continue from the prompt's end, so the model computes exactly what it
would for ``prompt+chosen`` and ``prompt+rejected`` run apart, with the prompt computed
once. Several such groups may share a row (packing). The rule is a 4-D boolean mask
that transformers passes to attention as it is; ``tests/test_training_sequences.py``
shows packed and unpacked rows give the same log-probabilities.

Why by hand: TRL and transformers pack sequences that are independent (position ids
restarting at 0); neither packs answers that share a prompt, which is what halves the
work of a DPO step on multi-turn conversations where the prompt is most of the tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tutelage.training.data import Messages

__all__ = [
    "AnswerScorer",
    "Group",
    "Rows",
    "answer_logprobs",
    "encode_answer_ids",
    "encode_prompt",
    "fit_group",
    "group_rows",
    "pack_groups",
]


def encode_prompt(tokenizer: Any, messages: Messages, text: str) -> list[int]:
    """Return the prompt's token ids, ending where the answer starts.

    With a chat template (SmolLM2 and other instruct models) the messages are rendered
    with the assistant turn opened; otherwise the flattened text and a newline.
    """
    if messages and getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": role, "content": content} for role, content in messages],
            add_generation_prompt=True,
            tokenize=False,
        )
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    return list(tokenizer(text + "\n", add_special_tokens=False)["input_ids"])


def encode_answer_ids(tokenizer: Any, answer: str) -> list[int]:
    """Return the answer's token ids followed by the end-of-turn token the model should emit."""
    ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return ids


@dataclass(frozen=True)
class Group:
    """A prompt and its answers, as token ids, within the length budget."""

    prompt: list[int]
    answers: tuple[list[int], ...]
    truncated: bool

    @property
    def tokens(self) -> int:
        """Real tokens of the sequences this group stands for: prompt+answer for each."""
        return sum(len(self.prompt) + len(a) for a in self.answers)

    @property
    def width(self) -> int:
        """Positions the group takes in a row: the prompt once, then every answer."""
        return len(self.prompt) + sum(len(a) for a in self.answers)


def fit_group(prompt: list[int], answers: list[list[int]], max_length: int) -> Group:
    """Return the group with every prompt+answer within `max_length` tokens.

    The prompt loses its leading tokens first (the answer is what is judged); only when
    no prompt is left are the answers' ends cut. Nothing is dropped.
    """
    longest = max(len(a) for a in answers)
    excess = len(prompt) + longest - max_length
    if excess <= 0:
        return Group(prompt, tuple(answers), truncated=False)
    if excess < len(prompt):
        return Group(prompt[excess:], tuple(answers), truncated=True)
    keep = max_length - 1
    # one prompt token stays so every answer token has a position to be predicted from
    return Group(prompt[-1:], tuple(a[:keep] for a in answers), truncated=True)


@dataclass(frozen=True)
class Rows:
    """Tensors for one forward pass and where each answer's tokens are.

    `input_ids`, `position_ids`: (rows, width); `attention_mask`: (rows, 1, width, width)
    booleans, True where a query position may attend to a key position. `answer_spans`
    lists, per group in order, for each answer (row, start, end): the answer occupies
    positions [start, end) of that row.
    """

    input_ids: Any
    position_ids: Any
    attention_mask: Any
    answer_spans: list[list[tuple[int, int, int]]]
    real_tokens: int


def pack_groups(groups: list[Group], capacity: int) -> list[list[int]]:
    """Return the groups' indices packed into rows of at most `capacity` positions,
    first fit in decreasing width (a group wider than `capacity` gets its own row)."""
    order = sorted(range(len(groups)), key=lambda i: -groups[i].width)
    rows: list[list[int]] = []
    free: list[int] = []
    for index in order:
        width = groups[index].width
        for r, room in enumerate(free):
            if width <= room:
                rows[r].append(index)
                free[r] -= width
                break
        else:
            rows.append([index])
            free.append(capacity - width)
    return rows


def group_rows(groups: list[Group], layout: list[list[int]], pad_token_id: int) -> Rows:
    """Return the rows of `layout` (lists of indices into `groups`) as tensors."""
    width = max(sum(groups[i].width for i in row) for row in layout)
    count = len(layout)
    input_ids = torch.full((count, width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((count, width), dtype=torch.long)
    # segment: which group a position belongs to (-1: padding); branch: 0 for the
    # prompt, k for the k-th answer. A query sees an earlier key of its own group when
    # the key is prompt or the same answer.
    segment = torch.full((count, width), -1, dtype=torch.long)
    branch = torch.zeros((count, width), dtype=torch.long)
    spans: dict[int, list[tuple[int, int, int]]] = {}
    for r, row in enumerate(layout):
        at = 0
        for index in row:
            group = groups[index]
            p = len(group.prompt)
            input_ids[r, at : at + p] = torch.tensor(group.prompt)
            position_ids[r, at : at + p] = torch.arange(p)
            segment[r, at : at + p] = index
            at += p
            spans[index] = []
            for k, answer in enumerate(group.answers, start=1):
                n = len(answer)
                input_ids[r, at : at + n] = torch.tensor(answer)
                position_ids[r, at : at + n] = torch.arange(p, p + n)
                segment[r, at : at + n] = index
                branch[r, at : at + n] = k
                spans[index].append((r, at, at + n))
                at += n
    query_segment, key_segment = segment[:, :, None], segment[:, None, :]
    query_branch, key_branch = branch[:, :, None], branch[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allowed = (
        (query_segment == key_segment)
        & (query_segment >= 0)
        & causal
        & ((key_branch == 0) | (key_branch == query_branch))
    )
    # padding attends to itself only, so no softmax row is empty (which gives NaN)
    allowed |= torch.eye(width, dtype=torch.bool)
    ordered = [spans[i] for i in range(len(groups)) if i in spans]
    real = sum(groups[i].tokens for row in layout for i in row)
    return Rows(input_ids, position_ids, allowed[:, None], ordered, real)


class AnswerScorer(torch.nn.Module):
    """Wraps a causal LM so one forward call returns the log-probabilities of chosen
    tokens: the module DDP/FSDP wrap, so gradients are synchronised as usual.

    Only the positions that predict answer tokens go through the output layer, which
    for a 49k-token vocabulary is a good part of the work on prompt-heavy data.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        predictor_rows: torch.Tensor,
        predictor_positions: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.model.get_decoder()(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=attention_mask,
            use_cache=False,
        ).last_hidden_state
        selected = hidden[predictor_rows, predictor_positions]
        logits = self.model.get_output_embeddings()(selected).float()
        logps: torch.Tensor = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]
        return logps


def answer_logprobs(scorer: Any, rows: Rows) -> torch.Tensor:
    """Return the summed log-probability of every answer, shape (groups, answers), from
    an `AnswerScorer` (or the DDP/FSDP module wrapping one)."""
    # the token at position t is predicted by the output at t-1; every answer's first
    # token is predicted from the prompt's last position, just before the first answer
    predictor_rows: list[int] = []
    predictor_positions: list[int] = []
    targets: list[int] = []
    owners: list[int] = []
    per_group = len(rows.answer_spans[0])
    for g, group_spans in enumerate(rows.answer_spans):
        first_start = group_spans[0][1]
        for k, (r, start, end) in enumerate(group_spans):
            # [: end - start]: an empty answer (no tokens, no EOS) predicts nothing
            positions = [first_start - 1, *range(start, end - 1)][: end - start]
            predictor_rows.extend([r] * len(positions))
            predictor_positions.extend(positions)
            targets.extend(rows.input_ids[r, start:end].tolist())
            owners.extend([g * per_group + k] * (end - start))
    device = next(scorer.parameters()).device
    token_logps = scorer(
        rows.input_ids.to(device),
        rows.position_ids.to(device),
        rows.attention_mask.to(device),
        torch.tensor(predictor_rows, device=device),
        torch.tensor(predictor_positions, device=device),
        torch.tensor(targets, device=device),
    )
    totals = torch.zeros(len(rows.answer_spans) * per_group, device=device)
    totals = totals.index_add(0, torch.tensor(owners, device=device), token_logps)
    return totals.view(len(rows.answer_spans), per_group)
