"""What can go wrong in the workspace, each mapped to one HTTP status by the web layer."""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "NeedsNda",
    "NeedsQualification",
    "NotFound",
    "Unauthenticated",
    "WorkspaceError",
]


class WorkspaceError(Exception):
    """Base class; `status` is the HTTP status the web layer answers with."""

    status = 400

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or type(self).__name__.lower()


class Unauthenticated(WorkspaceError):
    status = 401


class Forbidden(WorkspaceError):
    status = 403


class NeedsNda(Forbidden):
    """The expert must accept the project's current NDA text first."""


class NeedsQualification(Forbidden):
    """The expert has not (yet) passed the project's qualification."""


class Invalid(WorkspaceError):
    """A value that can never be right (control characters in a name, say): 422."""

    status = 422


class NotFound(WorkspaceError):
    status = 404


class Conflict(WorkspaceError):
    status = 409
