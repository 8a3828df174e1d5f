"""Chat data: ``{"messages": [...]}`` per record, a prompt and optionally its answer.

When the last message is the assistant's and something comes before it, it is the
answer; otherwise the whole conversation is the prompt. A prompt that itself ends with
an assistant message therefore reads back as a prompt and an answer.
"""

from __future__ import annotations

import pyarrow as pa

from tutelage.formats.fields import (
    MESSAGE_LIST,
    dump_messages,
    parse_messages,
    require,
    require_user_turn,
)
from tutelage.records import ChatExample, Completion, PreferencePair

__all__ = ["SCHEMA", "encode_chat", "parse_chat"]

SCHEMA = pa.schema([("messages", MESSAGE_LIST)])


def parse_chat(record: dict[str, object]) -> ChatExample:
    """Return the chat example in a ``messages`` record."""
    messages = parse_messages(require(record, "messages"), "messages")
    if len(messages) > 1 and messages[-1].role == "assistant":
        return ChatExample(
            prompt=require_user_turn(messages[:-1], "messages"),
            answer=Completion(text=messages[-1].content),
        )
    return ChatExample(prompt=require_user_turn(messages, "messages"))


def encode_chat(record: PreferencePair | ChatExample) -> dict[str, object]:
    """Return the ``messages`` record of a chat example, or of a preference pair's prompt."""
    require_user_turn(record.prompt.messages, "prompt")
    messages = dump_messages(record.prompt.messages)
    if isinstance(record, ChatExample) and record.answer is not None:
        messages.append({"role": "assistant", "content": record.answer.text})
    return {"messages": messages}
