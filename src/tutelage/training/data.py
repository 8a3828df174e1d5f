"""Preference pairs for training: loaded from a dataset version or a file, then tokenised.

A pair longer than `max_length` is cut from the left of its prompt first (the answer is
what is judged); it is never dropped, and the cut pairs are counted.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tutelage.records import ChatExample, PreferencePair

__all__ = [
    "Demonstration",
    "DemonstrationData",
    "Messages",
    "PreferenceData",
    "TokenisedPair",
    "TrainingPair",
    "content_hash",
    "encode_answer",
    "length_grouped_batches",
    "load_demonstrations",
    "load_pairs",
    "pad_batch",
    "split_by_prompt",
    "tokenise_pairs",
]


Messages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TrainingPair:
    """A prompt with its chosen and rejected answer.

    `prompt` is the conversation flattened to "role: content" lines (what an encoder
    reward model reads); `messages` keeps its (role, content) turns for chat templates.
    """

    prompt: str
    chosen: str
    rejected: str
    strength: str | None = None
    messages: Messages = ()


@dataclass(frozen=True)
class Demonstration:
    """A prompt and the answer the model should give: one SFT example."""

    prompt: str
    answer: str
    messages: Messages = ()


@dataclass(frozen=True)
class PreferenceData:
    """Pairs to train on and where they came from: a version (name and hash) or a file."""

    pairs: list[TrainingPair]
    source: str
    version_name: str | None = None
    version_hash: str | None = None
    # the fraction of the source's prompts held out (`split_by_prompt`, the run's seed)
    held_out: float | None = None

    @cached_property
    def sha256(self) -> str:
        """The pairs' `content_hash`: what a resumed run must train on again."""
        return content_hash(self.pairs)


@dataclass(frozen=True)
class DemonstrationData:
    """Demonstrations to train on and where they came from: a version or a file."""

    examples: list[Demonstration]
    source: str
    version_name: str | None = None
    version_hash: str | None = None

    @cached_property
    def sha256(self) -> str:
        """The examples' `content_hash`: what a resumed run must train on again."""
        return content_hash(self.examples)


def content_hash(items: Sequence[TrainingPair | Demonstration]) -> str:
    """Return the sha256 of `items` in their order: batches are drawn by position (and a
    DPO run's cached reference log-probabilities are indexed by it), so the same examples
    in another order are other data to a resumed run."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(
            json.dumps(astuple(item), ensure_ascii=False).encode("utf-8", "surrogatepass")
        )
        digest.update(b"\n")
    return digest.hexdigest()


def load_pairs(
    data: str | Path,
    *,
    db: str | None = None,
    override: str | None = None,
    actor: str = "training",
    split: str | None = "train",
) -> PreferenceData:
    """Return the pairs of `data`: an existing file (any format `tutelage import` reads),
    else a dataset version name or hash prefix in the store at `db`.

    A version must pass the governance gate (`require_checked`), which raises
    `DatasetError` naming ``--override`` unless `override` gives a reason. `split`
    selects a version's split (None: all); files have no splits.
    """
    path = Path(data)
    if path.is_file():
        return PreferenceData(pairs=_pairs_from_file(path), source=str(path))
    version, records = _version_records(data, "preference", db, override, actor, split)
    pairs = [
        TrainingPair(
            prompt=str(text), chosen=str(c), rejected=str(r), messages=_version_messages(p)
        )
        for p, text, c, r in zip(
            records["prompt"],
            records["prompt_text"],
            records["chosen"],
            records["rejected"],
            strict=True,
        )
    ]
    return PreferenceData(
        pairs=pairs, source=version.name, version_name=version.name, version_hash=version.hash
    )


def load_demonstrations(
    data: str | Path,
    *,
    db: str | None = None,
    override: str | None = None,
    actor: str = "training",
    split: str | None = "train",
) -> DemonstrationData:
    """Return the demonstrations of `data`: a chat file whose records carry an answer,
    a preference file (its chosen answers), or an `sft` dataset version (rewrites and
    demonstrations), gated as in `load_pairs`."""
    path = Path(data)
    if path.is_file():
        return DemonstrationData(examples=_demonstrations_from_file(path), source=str(path))
    version, records = _version_records(data, "sft", db, override, actor, split)
    examples = [
        Demonstration(prompt=str(text), answer=str(answer), messages=_version_messages(p))
        for p, text, answer in zip(
            records["prompt"], records["prompt_text"], records["completion"], strict=True
        )
    ]
    return DemonstrationData(
        examples=examples, source=version.name, version_name=version.name, version_hash=version.hash
    )


def _version_records(
    data: str | Path, kind: str, db: str | None, override: str | None, actor: str, split: str | None
) -> tuple[Any, Any]:
    from tutelage.datasets.gate import require_checked
    from tutelage.datasets.versions import DatasetError, open_version, read_records
    from tutelage.store import open_store

    store = open_store(db)
    try:
        with store.session() as session:
            version = open_version(session, ref=str(data))
            require_checked(session, version=version, override=override, actor=actor)
    finally:
        store.close()
    if version.kind != kind:
        wanted = "a reward model or DPO" if kind == "preference" else "SFT"
        raise DatasetError(
            f"dataset version {version.name!r} holds {version.kind} records; "
            f"{wanted} trains on a {kind} version"
        )
    records = read_records(version)
    if split is not None:
        records = records[records["split"] == split]
    return version, records


def _version_messages(prompt: object) -> Messages:
    return tuple((m["role"], m["content"]) for m in json.loads(str(prompt)))


def _record_messages(prompt: Any) -> tuple[str, Messages]:
    messages = tuple((str(m.role), m.content) for m in prompt.messages)
    return "\n".join(f"{role}: {content}" for role, content in messages), messages


def _pairs_from_file(path: Path) -> list[TrainingPair]:
    from tutelage.formats import FormatError, read_file

    pairs = []
    for item in read_file(path):
        if item.error is not None:
            raise item.error
        record = item.record
        if not isinstance(record, PreferencePair):
            raise FormatError(path, item.line, None, "expected a preference pair, not a chat")
        prompt, messages = _record_messages(record.prompt)
        strength = record.strength.value if record.strength is not None else None
        pairs.append(
            TrainingPair(prompt, record.chosen.text, record.rejected.text, strength, messages)
        )
    return pairs


def _demonstrations_from_file(path: Path) -> list[Demonstration]:
    from tutelage.formats import FormatError, read_file

    examples = []
    for item in read_file(path):
        if item.error is not None:
            raise item.error
        record = item.record
        if isinstance(record, PreferencePair):
            answer = record.chosen.text
        elif isinstance(record, ChatExample) and record.answer is not None:
            answer = record.answer.text
        else:
            raise FormatError(path, item.line, "answer", "a chat with no answer to learn from")
        prompt, messages = _record_messages(record.prompt)
        examples.append(Demonstration(prompt, answer, messages))
    return examples


def split_by_prompt(
    pairs: list[TrainingPair], *, fraction: float = 0.2, seed: int = 0
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Return (train, held_out): the distinct prompts are shuffled with `seed` and the
    first `fraction` of them held out, so no prompt is on both sides."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be between 0 and 1, not {fraction}")
    prompts = sorted({p.prompt for p in pairs})
    random.Random(seed).shuffle(prompts)
    count = round(len(prompts) * fraction)
    if not 0 < count < len(prompts):
        raise ValueError(
            f"a held-out fraction of {fraction:g} of {len(prompts)} distinct prompts "
            + ("holds out none" if count == 0 else "leaves none to train on")
        )
    held = set(prompts[:count])
    return [p for p in pairs if p.prompt not in held], [p for p in pairs if p.prompt in held]


@dataclass(frozen=True)
class TokenisedPair:
    """The encodings (input_ids, attention_mask, ...) of prompt+chosen and prompt+rejected."""

    chosen: dict[str, list[int]]
    rejected: dict[str, list[int]]
    truncated: bool

    @property
    def length(self) -> int:
        return max(len(self.chosen["input_ids"]), len(self.rejected["input_ids"]))


def _encode(tokenizer: Any, prompt: str, answer: str, **options: Any) -> dict[str, list[int]]:
    encoded = tokenizer(prompt, answer, **options)
    return {key: list(value) for key, value in encoded.items()}


def encode_answer(
    tokenizer: Any, prompt: str, answer: str, max_length: int
) -> tuple[dict[str, list[int]], bool]:
    """Return the encoding of (prompt, answer) within `max_length` tokens and whether it
    was cut: leading prompt tokens go first; only when no prompt is left is the answer's
    end cut."""
    encoded = _encode(tokenizer, prompt, answer)
    excess = len(encoded["input_ids"]) - max_length
    if excess <= 0:
        return encoded, False
    offsets = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    drop = excess
    while drop < len(offsets):
        # re-tokenising a cut text can differ by a token at the cut, so check and go on
        encoded = _encode(tokenizer, prompt[offsets[drop][0] :], answer)
        excess = len(encoded["input_ids"]) - max_length
        if excess <= 0:
            return encoded, True
        drop += excess
    cut = _encode(tokenizer, "", answer, truncation="only_second", max_length=max_length)
    return cut, True


def tokenise_pairs(
    tokenizer: Any, pairs: list[TrainingPair], max_length: int
) -> list[TokenisedPair]:
    """Return every pair tokenised within `max_length`; none is dropped."""
    tokenised = []
    for pair in pairs:
        chosen, chosen_cut = encode_answer(tokenizer, pair.prompt, pair.chosen, max_length)
        rejected, rejected_cut = encode_answer(tokenizer, pair.prompt, pair.rejected, max_length)
        tokenised.append(TokenisedPair(chosen, rejected, chosen_cut or rejected_cut))
    return tokenised


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Return batches of indices in which lengths are similar, so little is padding.

    Indices are shuffled, sorted by length within windows of 50 batches, cut into
    batches, and the batches shuffled: random order, yet similar lengths together.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def pad_batch(encodings: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, Any]:
    """Return the encodings right-padded to the longest as tensors of shape (n, longest)."""
    import torch

    longest = max(len(e["input_ids"]) for e in encodings)
    batch: dict[str, Any] = {}
    for key in encodings[0]:
        fill = pad_token_id if key == "input_ids" else 0
        rows = [e[key] + [fill] * (longest - len(e[key])) for e in encodings]
        batch[key] = torch.tensor(rows, dtype=torch.long)
    return batch
