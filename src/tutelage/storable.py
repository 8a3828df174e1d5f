"""Text no store can hold, found and refused where it enters, naming where it is.

NUL cannot be stored in PostgreSQL's text or JSON, and an unpaired UTF-16 surrogate
(a JSON ``\\ud800`` escape) has no UTF-8 form, so neither database can store it. SQLite
would store a NUL that PostgreSQL refuses: refusing both everywhere keeps the two alike.
Other control characters (tabs, newlines, escapes) are valid text and stay; names and
identifiers refuse those too (`records.refuse_control_characters`).
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import BaseModel, model_validator

__all__ = ["Storable", "find_unstorable", "unstorable"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """What in `value` no store can hold, worded for an error message; None if nothing."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    name = "a NUL character" if char == "\x00" else "an unpaired surrogate"
    return f"{name} (U+{ord(char):04X}), which cannot be stored"


def find_unstorable(value: Any, where: str) -> tuple[str, str] | None:
    """The first text in `value` (nested in dicts, lists and tuples, keys included) that
    no store can hold, as (where it is, what is wrong); None if there is none."""
    if isinstance(value, str):
        problem = unstorable(value)
        return None if problem is None else (where, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_unstorable(key, where) or find_unstorable(item, f"{where}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = find_unstorable(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


class Storable(BaseModel):
    """A model whose every text can be stored: a NUL or an unpaired surrogate in any
    field is a validation error naming the field. (Nested models check their own.)"""

    @model_validator(mode="after")
    def _text_can_be_stored(self) -> Self:
        for name, value in self.__dict__.items():
            if isinstance(value, BaseModel):
                continue
            found = find_unstorable(value, name)
            if found is not None:
                raise ValueError(f"field '{found[0]}' holds {found[1]}")
        return self
