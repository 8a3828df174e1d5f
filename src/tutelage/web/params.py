"""Types of the numbers a request names: bounded, so that no value reaches the store that
it cannot hold (a 64-bit id in a path was a 500 on SQLite, and PostgreSQL's ids are 32-bit).
The bounds are in the OpenAPI document, and a value outside them is a 422 naming it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

from tutelage.workspace.passwords import MAX_PASSWORD_BYTES

__all__ = ["MAX_ID", "BodyId", "Id", "Limit", "Password"]

MAX_ID = 2**31 - 1  # the store's id columns are INTEGER: 32-bit on PostgreSQL

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A stored id.")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=10_000, description="How many rows at most.")]
# Bounded because argon2 hashes the whole input (the policy then counts its bytes).
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_BYTES)]
