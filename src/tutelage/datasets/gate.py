"""The gate training passes through: a version must have passed its latest check.

An override lets a person use an unchecked or failed version anyway, for a stated
reason; the override is appended to the version's history and shown in its card.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tutelage.datasets.versions import DatasetError, DatasetVersion, events, record_event

__all__ = ["require_checked"]


def require_checked(
    session: Session, *, version: DatasetVersion, override: str | None, actor: str
) -> None:
    """Return if the version's latest check passed; with `override`, record it and return;
    otherwise raise `DatasetError` saying why and how to override."""
    history = events(session, version=version)
    checks = [e for e in history if e.kind == "check"]
    latest = checks[-1] if checks else None
    if latest is not None and latest.passed:
        return
    if override is not None and override.strip():
        record_event(
            session,
            version=version,
            kind="override",
            passed=None,
            details={
                "reason": override.strip(),
                "check_event": latest.id if latest is not None else None,
                "check_passed": latest.passed if latest is not None else None,
            },
            actor=actor,
        )
        return
    if override is not None:
        raise DatasetError('an override needs a reason: --override "why this version may be used"')
    how = (
        'pass --override "reason" to use it anyway (the override is recorded in its '
        "history and shown in its card)"
    )
    if latest is None:
        raise DatasetError(
            f"dataset version {version.name!r} has not been checked: run "
            f"`tutelage check {version.name}` first, or {how}"
        )
    summary = str(latest.details.get("summary") or "")
    failed = [
        name
        for name, part in latest.details.items()
        if isinstance(part, dict) and part.get("passed") is False
    ]
    because = summary or (f"failed: {', '.join(failed)}" if failed else "failed")
    raise DatasetError(
        f"dataset version {version.name!r} failed its latest check "
        f"({latest.at:%Y-%m-%d %H:%M} UTC: {because}): fix the data (e.g. `tutelage redact "
        f"{version.name} --name NEW`) and check again, or {how}"
    )
