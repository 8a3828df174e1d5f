"""The expert workspace's services: accounts, policy, items, queue, judging, pay, audit.

Routes in `tutelage.web` call these; they take keyword-only arguments and an explicit
session, and raise `WorkspaceError`s that carry the HTTP status to answer with.
"""

from tutelage.workspace.accounts import Actor
from tutelage.workspace.errors import (
    Conflict,
    Forbidden,
    NeedsNda,
    NeedsQualification,
    NotFound,
    Unauthenticated,
    WorkspaceError,
)

__all__ = [
    "Actor",
    "Conflict",
    "Forbidden",
    "NeedsNda",
    "NeedsQualification",
    "NotFound",
    "Unauthenticated",
    "WorkspaceError",
]
