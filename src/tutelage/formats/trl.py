"""TRL preference data: ``prompt``, ``chosen``, ``rejected``, as text or as message lists.

Reading takes TRL's standard form (plain strings: the prompt is one user message), its
conversational form (message lists; ``chosen``/``rejected`` hold one assistant message),
and its conversational form with an implicit prompt (no ``prompt``; ``chosen`` and
``rejected`` are whole conversations that differ only in the last assistant message).
"""

from __future__ import annotations

import pyarrow as pa

from tutelage.formats.errors import RecordError
from tutelage.formats.fields import (
    MESSAGE_LIST,
    dump_messages,
    parse_messages,
    parse_strength,
    require,
    require_user_turn,
)
from tutelage.records import ChatExample, Completion, Message, PreferencePair, Prompt

__all__ = [
    "CONVERSATIONAL_SCHEMA",
    "TEXT_SCHEMA",
    "encode_conversational",
    "encode_text",
    "parse_trl",
]

CONVERSATIONAL_SCHEMA = pa.schema(
    [("prompt", MESSAGE_LIST), ("chosen", MESSAGE_LIST), ("rejected", MESSAGE_LIST)]
)
TEXT_SCHEMA = pa.schema(
    [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]
)


def parse_trl(record: dict[str, object]) -> PreferencePair:
    """Return the preference pair in a TRL record, in any of its three forms."""
    strength = parse_strength(record)
    implicit = "prompt" not in record and all(
        isinstance(record.get(field), list) for field in ("chosen", "rejected")
    )
    if implicit:
        prompt, chosen, rejected = _implicit_prompt(record)
    else:
        prompt = _prompt(require(record, "prompt"))
        chosen = _answer(record, "chosen")
        rejected = _answer(record, "rejected")
    return PreferencePair(
        prompt=prompt,
        chosen=Completion(text=chosen),
        rejected=Completion(text=rejected),
        strength=strength,
    )


def _prompt(value: object) -> Prompt:
    if isinstance(value, str):
        return require_user_turn((Message(role="user", content=value),), "prompt")
    if isinstance(value, list):
        return require_user_turn(parse_messages(value, "prompt"), "prompt")
    raise RecordError("must be a string or a list of messages", field="prompt")


def _answer(record: dict[str, object], field: str) -> str:
    value = require(record, field)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _assistant_text(parse_messages(value, field), field)
    raise RecordError("must be a string or a list of messages", field=field)


def _assistant_text(messages: tuple[Message, ...], field: str) -> str:
    # Several assistant messages could be joined, but into what? Refuse rather than guess.
    if len(messages) != 1 or messages[0].role != "assistant":
        raise RecordError("expected one assistant message", field=field)
    return messages[0].content


def _implicit_prompt(record: dict[str, object]) -> tuple[Prompt, str, str]:
    chosen = parse_messages(record["chosen"], "chosen")
    rejected = parse_messages(record["rejected"], "rejected")
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise RecordError("chosen and rejected share no prompt", field="chosen")
    return (
        require_user_turn(chosen[:shared], "chosen"),
        _assistant_text(chosen[shared:], "chosen"),
        _assistant_text(rejected[shared:], "rejected"),
    )


def encode_conversational(record: PreferencePair | ChatExample) -> dict[str, object]:
    """Return the conversational TRL record of a preference pair."""
    pair = _pair(record, "trl")
    return {
        "prompt": dump_messages(pair.prompt.messages),
        "chosen": [{"role": "assistant", "content": pair.chosen.text}],
        "rejected": [{"role": "assistant", "content": pair.rejected.text}],
    }


def encode_text(record: PreferencePair | ChatExample) -> dict[str, object]:
    """Return the plain-text TRL record of a single-turn preference pair."""
    pair = _pair(record, "trl-text")
    messages = pair.prompt.messages
    if len(messages) != 1 or messages[0].role != "user":
        raise RecordError(
            f"prompt has {len(messages)} message(s) ({', '.join(m.role for m in messages)}); "
            "trl-text holds one user message only, use 'trl'"
        )
    # The reader refuses empty strings (a sign of broken data), so never write one.
    for field, text in (
        ("prompt", messages[0].content),
        ("chosen", pair.chosen.text),
        ("rejected", pair.rejected.text),
    ):
        if text == "":
            raise RecordError(f"{field} is empty; trl-text cannot hold empty text, use 'trl'")
    return {
        "prompt": messages[0].content,
        "chosen": pair.chosen.text,
        "rejected": pair.rejected.text,
    }


def _pair(record: PreferencePair | ChatExample, fmt: str) -> PreferencePair:
    if not isinstance(record, PreferencePair):
        raise RecordError(f"a chat example has no rejected answer to write as {fmt!r}; use 'chat'")
    require_user_turn(record.prompt.messages, "prompt")
    return record
