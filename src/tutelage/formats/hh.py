"""Anthropic HH-RLHF transcripts: ``chosen`` and ``rejected`` share the dialogue.

Each transcript reads ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``; the two differ in the
last Assistant turn. Splitting on the last ``"\\n\\nAssistant:"`` is wrong for the real
data: some final answers contain that text themselves, and some dialogues have two
Assistant turns in a row. The prompt therefore ends at the last Assistant marker that
lies inside the text chosen and rejected have in common.
"""

from __future__ import annotations

import re

import pyarrow as pa

from tutelage.formats.errors import RecordError
from tutelage.formats.fields import parse_strength, require_string, require_user_turn
from tutelage.records import ChatExample, Completion, Message, PreferencePair, Prompt

__all__ = ["SCHEMA", "encode_hh", "parse_hh", "split_transcripts", "transcript"]

SCHEMA = pa.schema([("chosen", pa.string()), ("rejected", pa.string())])

_ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant): ?")
_SPEAKERS = {"user": "Human", "assistant": "Assistant"}


def parse_hh(record: dict[str, object]) -> PreferencePair:
    """Return the preference pair in an HH-RLHF record."""
    prompt, chosen, rejected = split_transcripts(
        require_string(record, "chosen"), require_string(record, "rejected")
    )
    return PreferencePair(
        prompt=prompt,
        chosen=Completion(text=chosen),
        rejected=Completion(text=rejected),
        strength=parse_strength(record),
    )


def split_transcripts(chosen: str, rejected: str) -> tuple[Prompt, str, str]:
    """Return the shared prompt and the two final answers of a pair of transcripts.

    An answer may be empty (the real data has a few ``"\\n\\nAssistant: "`` answers).
    When the transcripts are equal the whole text is shared and the last marker is used.
    """
    shared = chosen[: _shared_length(chosen, rejected)]
    cut = shared.rfind(_ASSISTANT)
    if cut < 0:
        raise RecordError("chosen and rejected share no dialogue up to an Assistant turn")
    answer_start = cut + len(_ASSISTANT)
    return (
        _prompt(chosen[:cut]),
        _drop_one_space(chosen[answer_start:]),
        _drop_one_space(rejected[answer_start:]),
    )


def _shared_length(first: str, second: str) -> int:
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return index
    return min(len(first), len(second))


def _drop_one_space(text: str) -> str:
    # The format is "Assistant: text"; an answer that starts with two spaces keeps one.
    return text[1:] if text.startswith(" ") else text


def _prompt(dialogue: str) -> Prompt:
    parts = _TURN.split(dialogue)
    if parts[0] != "":
        raise RecordError("text before the first Human turn", field="chosen")
    speakers, contents = parts[1::2], parts[2::2]
    messages = tuple(
        Message(role="user" if speaker == "Human" else "assistant", content=content)
        for speaker, content in zip(speakers, contents, strict=True)
    )
    return require_user_turn(messages, "chosen")


def encode_hh(record: PreferencePair | ChatExample) -> dict[str, object]:
    """Return the HH-RLHF record of a preference pair."""
    if not isinstance(record, PreferencePair):
        raise RecordError("a chat example has no rejected answer to write as 'hh-rlhf'; use 'chat'")
    require_user_turn(record.prompt.messages, "prompt")
    dialogue = transcript(record.prompt.messages)
    return {
        "chosen": f"{dialogue}{_ASSISTANT} {record.chosen.text}",
        "rejected": f"{dialogue}{_ASSISTANT} {record.rejected.text}",
    }


def transcript(messages: tuple[Message, ...]) -> str:
    """Return messages as HH-RLHF turns; raises for a system message, which HH cannot hold."""
    turns = []
    for message in messages:
        if message.role == "system":
            raise RecordError("hh-rlhf has no system turn; use 'trl' or 'chat'")
        turns.append(f"\n\n{_SPEAKERS[message.role]}: {message.content}")
    return "".join(turns)
