"""What a password must be: long enough, not too long to hash, and hard to guess.

The same rules for every way an account gets a password: `tutelage users create`, the
admin API and pages, and an accepted invitation. Guessability is zxcvbn's estimate
(Dropbox's strength estimator, offline: it carries its lists of common passwords, words
and names), fed the account's own e-mail address and handle, so that `password12`,
`1111111111` or a password that is the e-mail's local part are refused with its reason.
"""

from __future__ import annotations

import difflib
import re

from zxcvbn import zxcvbn

from tutelage.workspace.errors import WorkspaceError

__all__ = ["MAX_PASSWORD_BYTES", "MIN_PASSWORD_LENGTH", "WeakPassword", "check_password"]

MIN_PASSWORD_LENGTH = 10
# argon2 hashes the whole input: a bound keeps a sign-in's cost bounded too. Checked on the
# UTF-8 bytes, before anything else is done with the password.
MAX_PASSWORD_BYTES = 1024
MIN_SCORE = 3  # zxcvbn: 0 too guessable … 4 very unguessable; 3 resists offline attack
_SCORED_CHARACTERS = 72  # zxcvbn's own limit; the rest of a long password only adds
_TOO_SIMILAR = 0.8  # difflib's ratio to the e-mail's local part or the handle
_FEW_MORE = 6  # characters added to the local part or handle ("ada1234") leave it close


class WeakPassword(WorkspaceError):
    """A password the policy refuses; the message says why and what would do."""

    status = 422

    def __init__(self, message: str):
        super().__init__(message, code="weak_password")


def _plain(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def check_password(password: str, *, email: str = "", handle: str = "", name: str = "") -> None:
    """Raise `WeakPassword` unless `password` may be used by the account described."""
    size = len(password.encode("utf-8", "surrogatepass"))
    if size > MAX_PASSWORD_BYTES:
        raise WeakPassword(
            f"a password may be at most {MAX_PASSWORD_BYTES} bytes long (this one is {size:,})"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    local = email.partition("@")[0]
    own = [("e-mail address", local), ("e-mail address", email), ("handle", handle)]
    plain = _plain(password)
    for what, value in own:
        value = _plain(value)
        if len(value) >= 3 and (
            plain == value
            or difflib.SequenceMatcher(None, plain, value).ratio() >= _TOO_SIMILAR
            or (len(value) >= 4 and value in plain and len(plain) - len(value) < _FEW_MORE)
        ):
            raise WeakPassword(f"a password must not be (close to) your {what}")
    inputs = [v for v in (email, local, handle, name, *handle.split("-")) if v]
    verdict = zxcvbn(password[:_SCORED_CHARACTERS], user_inputs=inputs)
    if verdict["score"] < MIN_SCORE:
        feedback = verdict["feedback"]
        why = feedback.get("warning", "").rstrip(".")
        advice = " ".join(feedback.get("suggestions") or ["Add another word or two."])
        raise WeakPassword(
            "this password is too easy to guess"
            + (f": {why[0].lower()}{why[1:]}" if why else "")
            + f". {advice} (a few unrelated words make a strong one)"
        )
