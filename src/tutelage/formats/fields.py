"""Fields shared by the formats: required values, message lists, strength.

Each check raises `RecordError` naming the field, e.g. ``prompt[2].role``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from tutelage.formats.errors import RecordError
from tutelage.records import Message, Prompt, Role, Strength

__all__ = [
    "MESSAGE_LIST",
    "dump_messages",
    "parse_messages",
    "parse_strength",
    "require",
    "require_string",
    "require_user_turn",
]

_ROLES: tuple[Role, ...] = ("system", "user", "assistant")

MESSAGE_LIST = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
"""The Arrow type of a message list in Parquet and ``datasets`` files."""


def require(record: dict[str, object], field: str) -> object:
    """Return `record[field]`; raises if it is missing, null, empty text or an empty list."""
    if field not in record:
        raise RecordError(f"missing field '{field}'", field=field)
    value = record[field]
    if value is None or value == "" or value == []:
        raise RecordError(f"empty field '{field}'", field=field)
    return value


def require_string(record: dict[str, object], field: str) -> str:
    """Return `record[field]` if it is a non-empty string; raises otherwise."""
    value = require(record, field)
    if not isinstance(value, str):
        raise RecordError("must be a string", field=field)
    return value


def parse_messages(value: object, field: str) -> tuple[Message, ...]:
    """Return the messages of a non-empty list of ``{"role", "content"}`` objects."""
    if value is None or value == []:
        raise RecordError(f"empty field '{field}'", field=field)
    if not isinstance(value, list):
        raise RecordError("must be a list of messages", field=field)
    return tuple(_parse_message(item, f"{field}[{index}]") for index, item in enumerate(value))


def _parse_message(item: object, where: str) -> Message:
    if not isinstance(item, dict):
        raise RecordError("must be an object with 'role' and 'content'", field=where)
    role = item.get("role")
    for known in _ROLES:
        if role == known:
            break
    else:
        raise RecordError(
            f"invalid role {role!r} (expected system, user or assistant)", field=f"{where}.role"
        )
    content = item.get("content")
    if not isinstance(content, str):
        raise RecordError("must be a string", field=f"{where}.content")
    return Message(role=known, content=content)


def require_user_turn(messages: tuple[Message, ...], field: str) -> Prompt:
    """Return `messages` as a Prompt; raises unless one of them is the user's and none
    of the user's is blank."""
    if not any(message.role == "user" for message in messages):
        raise RecordError("prompt has no user message", field=field)
    # A question of only whitespace asks nothing. (An empty answer is kept: HH-RLHF holds
    # four, where the model said nothing, and the preference against them is real.)
    for index, message in enumerate(messages):
        if message.role == "user" and not message.content.strip():
            where = field if len(messages) == 1 else f"{field}[{index}].content"
            raise RecordError(f"empty field '{where}'", field=where)
    return Prompt(messages=messages)


def dump_messages(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Return messages as the ``{"role", "content"}`` objects the chat formats use."""
    return [{"role": message.role, "content": message.content} for message in messages]


def parse_strength(record: dict[str, object]) -> Strength | None:
    """Return the optional ``strength`` of a preference record."""
    value = record.get("strength")
    if value is None:
        return None
    for strength in Strength:
        if value == strength.value:
            return strength
    raise RecordError(f"must be one of {', '.join(s.value for s in Strength)}", field="strength")
