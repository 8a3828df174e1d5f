"""Preference pairs for training: loaded from a dataset version or a file, then tokenised.

A pair longer than `max_length` is cut from the left of its prompt first (the answer is
what is judged); it is never dropped, and the cut pairs are counted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutelage.records import PreferencePair

__all__ = [
    "PreferenceData",
    "TokenisedPair",
    "TrainingPair",
    "encode_answer",
    "length_grouped_batches",
    "load_pairs",
    "pad_batch",
    "tokenise_pairs",
]


@dataclass(frozen=True)
class TrainingPair:
    """A prompt (flattened to "role: content" lines) with its chosen and rejected answer."""

    prompt: str
    chosen: str
    rejected: str
    strength: str | None = None


@dataclass(frozen=True)
class PreferenceData:
    """Pairs to train on and where they came from: a version (name and hash) or a file."""

    pairs: list[TrainingPair]
    source: str
    version_name: str | None = None
    version_hash: str | None = None


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
    if version.kind != "preference":
        raise DatasetError(
            f"dataset version {version.name!r} holds {version.kind} records; "
            "a reward model trains on a preference version"
        )
    records = read_records(version)
    if split is not None:
        records = records[records["split"] == split]
    pairs = [
        TrainingPair(prompt=str(p), chosen=str(c), rejected=str(r))
        for p, c, r in zip(
            records["prompt_text"], records["chosen"], records["rejected"], strict=True
        )
    ]
    return PreferenceData(
        pairs=pairs, source=version.name, version_name=version.name, version_hash=version.hash
    )


def _pairs_from_file(path: Path) -> list[TrainingPair]:
    from tutelage.formats import FormatError, read_file

    pairs = []
    for item in read_file(path):
        if item.error is not None:
            raise item.error
        record = item.record
        if not isinstance(record, PreferencePair):
            raise FormatError(path, item.line, None, "expected a preference pair, not a chat")
        prompt = "\n".join(f"{m.role}: {m.content}" for m in record.prompt.messages)
        strength = record.strength.value if record.strength is not None else None
        pairs.append(TrainingPair(prompt, record.chosen.text, record.rejected.text, strength))
    return pairs


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
