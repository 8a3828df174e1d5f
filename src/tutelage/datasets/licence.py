"""A version's licence, derived from its sources, and whether it allows commercial use.

Every source of a version (the project, and each import its records came from) has a
licence and a consent statement. The version lists them all; for commercial use the
most restrictive wins: one non-commercial source makes the whole version
non-commercial. `KNOWN_LICENCES` is the small table of licences we recognise; any
other name is matched by its words (``nc``, ``non-commercial``, ``research``) and
otherwise reported as unknown, which is a warning, not a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tutelage.datasets.versions import DatasetVersion

__all__ = [
    "KNOWN_LICENCES",
    "LicenceCheck",
    "commercial_use",
    "licence_check",
    "version_licence",
]

# name -> commercial use allowed? (True: allowed, False: not allowed)
KNOWN_LICENCES: dict[str, bool] = {
    "cc0-1.0": True,
    "mit": True,
    "apache-2.0": True,
    "bsd-3-clause": True,
    "cc-by-4.0": True,
    "cc-by-sa-4.0": True,
    "odc-by": True,
    "odbl": True,
    "cdla-permissive-2.0": True,
    "cdla-sharing-1.0": True,
    "cc-by-nc-4.0": False,
    "cc-by-nc-sa-4.0": False,
    "cc-by-nc-nd-4.0": False,
    "cc-by-nd-4.0": True,
    "research-only": False,
    "non-commercial": False,
}
_NOT_COMMERCIAL = re.compile(r"(^|[-_ ])nc($|[-_ ])|non-?commercial|research")
_UNKNOWN = {"", "unspecified", "unknown", "other"}


def commercial_use(licence: str) -> bool | None:
    """Whether `licence` allows commercial use: True, False, or None when unknown."""
    name = licence.strip().lower()
    if name in KNOWN_LICENCES:
        return KNOWN_LICENCES[name]
    if _NOT_COMMERCIAL.search(name):
        return False
    return None


def version_licence(sources: list[dict[str, str]], *, commercial: bool) -> dict[str, Any]:
    """Return the manifest's licence section from its sources (each with source,
    licence and consent): every licence listed, and commercial use by the most
    restrictive."""
    verdicts = [commercial_use(s["licence"]) for s in sources]
    if any(v is False for v in verdicts):
        use = "not allowed"
    elif sources and all(v is True for v in verdicts):
        use = "allowed"
    else:
        use = "unknown"
    return {
        "licences": sorted({s["licence"] for s in sources}),
        "sources": sources,
        "commercial_use": use,
        "marked_commercial": commercial,
    }


@dataclass(frozen=True)
class LicenceCheck:
    """The licence check of a version: failed when a source forbids its intended use."""

    passed: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "problems": self.problems, "warnings": self.warnings}


def licence_check(version: DatasetVersion, *, commercial: bool = False) -> LicenceCheck:
    """Check a version's sources against its use (commercial when asked or when the
    version was marked so at snapshot)."""
    section = version.manifest.get("licence") or {}
    commercial = commercial or bool(section.get("marked_commercial"))
    problems: list[str] = []
    warnings: list[str] = []
    for source in section.get("sources", []):
        verdict = commercial_use(str(source.get("licence", "")))
        where = f"{source.get('source')} (licence {source.get('licence')!r})"
        if verdict is False and commercial:
            problems.append(f"{where} does not allow commercial use")
        elif verdict is None and commercial:
            warnings.append(f"{where}: licence unknown, commercial use not established")
        if not str(source.get("consent", "")).strip():
            warnings.append(f"{where}: no consent statement")
    if not section.get("sources"):
        warnings.append("the version names no sources")
    return LicenceCheck(passed=not problems, problems=problems, warnings=warnings)
