"""`tutelage check`: contamination, leakage, personal data and licence of one version.

What fails a version (`CheckReport.passed` is False):

- *contamination*: a prompt or answer of the version (``prompt_text``, ``chosen``,
  ``rejected``, ``completion``) equals or nearly duplicates (`OverlapSettings`) the
  prompt or answer of an item of any registered eval set;
- *leakage*: a training prompt equals or nearly duplicates a validation or test
  prompt (splits are grouped by prompt, so only different prompts can leak; each pair
  of prompts is reported once, by the first record of each);
- *personal data*: any PII finding, unless the version was made by `tutelage redact`
  (its manifest has a ``redaction`` section), in which case what is still found is
  reported but does not fail it: the redaction ran, and what it left is for a person
  to judge;
- *licence*: the licence check of `tutelage.datasets.licence` failed.

The whole report is recorded as a "check" event of the version, which the gate and
the card read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tutelage.datasets.contamination import OverlapIndex, OverlapSettings
from tutelage.datasets.evalsets import eval_items, list_eval_sets
from tutelage.datasets.licence import licence_check
from tutelage.datasets.pii import PiiSettings, find_pii
from tutelage.datasets.versions import DatasetVersion, read_records, record_event
from tutelage.store import Store

__all__ = ["TEXT_FIELDS", "CheckReport", "CheckSettings", "run_checks"]

# The text columns of each kind that are checked, besides `prompt_text`.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "preference": ("prompt_text", "chosen", "rejected"),
    "sft": ("prompt_text", "completion"),
    "ratings": ("prompt_text", "completion"),
}


@dataclass(frozen=True)
class CheckSettings:
    """Thresholds of the overlap search, PII kinds, and the version's intended use."""

    overlap: OverlapSettings = field(default_factory=OverlapSettings)
    pii: PiiSettings = field(default_factory=PiiSettings)
    commercial: bool = False


@dataclass(frozen=True)
class CheckReport:
    """The result of checking one version; `to_json` is what `check --json` prints."""

    version: str
    hash: str
    passed: bool
    reasons: list[str]
    contamination: list[dict[str, Any]]
    leakage: list[dict[str, Any]]
    pii: list[dict[str, Any]]
    licence: dict[str, Any]
    redacted: bool
    eval_sets: list[dict[str, Any]]
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "hash": self.hash,
            "passed": self.passed,
            "reasons": self.reasons,
            "contamination": self.contamination,
            "leakage": self.leakage,
            "pii": self.pii,
            "pii_counts": dict(sorted(Counter(f["kind"] for f in self.pii).items())),
            "licence": self.licence,
            "redacted": self.redacted,
            "eval_sets": self.eval_sets,
            "settings": self.settings,
        }


Progress = Callable[[str], None]


def _contamination(
    records: list[dict[str, Any]],
    fields: tuple[str, ...],
    references: list[tuple[str, int, str, str]],
    settings: OverlapSettings,
) -> list[dict[str, Any]]:
    """Return the hits of the records' texts on the eval items' texts."""
    if not references:
        return []
    index = OverlapIndex([text for *_, text in references], settings)
    owners: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for record in records:
        for name in fields:
            text = str(record[name])
            owners[text].append((str(record["record_id"]), name))
    texts = list(owners)
    hits = []
    for match in index.matches(texts):
        eval_set, position, eval_field, _ = references[match.reference]
        for record_id, name in owners[texts[match.query]]:
            hits.append(
                {
                    "eval_set": eval_set,
                    "eval_index": position,
                    "eval_field": eval_field,
                    "record_id": record_id,
                    "field": name,
                    "similarity": round(match.similarity, 4),
                    "exact": match.exact,
                }
            )
    hits.sort(key=lambda h: (h["eval_set"], h["eval_index"], h["record_id"], h["field"]))
    return hits


def _leakage(records: list[dict[str, Any]], settings: OverlapSettings) -> list[dict[str, Any]]:
    """Return the pairs of prompts, one in train and one in validation or test, that overlap."""
    first: dict[str, dict[str, Any]] = {}
    for record in records:
        first.setdefault(str(record["prompt_key"]), record)
    train = [r for r in first.values() if r["split"] == "train"]
    held_out = [r for r in first.values() if r["split"] != "train"]
    if not train or not held_out:
        return []
    index = OverlapIndex([str(r["prompt_text"]) for r in held_out], settings)
    hits = []
    for match in index.matches(str(r["prompt_text"]) for r in train):
        mine, other = train[match.query], held_out[match.reference]
        hits.append(
            {
                "record_id": str(mine["record_id"]),
                "split": "train",
                "other_record_id": str(other["record_id"]),
                "other_split": str(other["split"]),
                "field": "prompt_text",
                "similarity": round(match.similarity, 4),
                "exact": match.exact,
            }
        )
    hits.sort(key=lambda h: (h["record_id"], h["other_record_id"]))
    return hits


def _pii(
    records: list[dict[str, Any]], fields: tuple[str, ...], settings: PiiSettings
) -> list[dict[str, Any]]:
    found: dict[str, list[Any]] = {}  # prompts repeat across records: scan each text once
    findings = []
    for record in records:
        for name in fields:
            text = str(record[name])
            if text not in found:
                found[text] = find_pii(text, settings)
            for finding in found[text]:
                findings.append(
                    {
                        "record_id": str(record["record_id"]),
                        "field": name,
                        "kind": finding.kind,
                        "start": finding.start,
                        "end": finding.end,
                    }
                )
    return findings


def run_checks(
    store: Store,
    *,
    version: DatasetVersion,
    settings: CheckSettings | None = None,
    actor: str = "",
    progress: Progress | None = None,
) -> CheckReport:
    """Check `version` and record the report as a "check" event of it."""
    settings = settings or CheckSettings()
    say = progress or (lambda _message: None)
    say("reading the version")
    records = read_records(version).to_dict("records")
    fields = TEXT_FIELDS[version.kind]
    with store.session() as session:
        sets = list_eval_sets(session)
        references: list[tuple[str, int, str, str]] = []
        for item in eval_items(session):
            references.append((item.eval_set, item.position, "prompt", item.prompt_text))
            if item.answer_text:
                references.append((item.eval_set, item.position, "answer", item.answer_text))
    say(f"contamination against {len(sets)} eval set(s)")
    contamination = _contamination(records, fields, references, settings.overlap)
    say("leakage between splits")
    leakage = _leakage(records, settings.overlap)
    say("personal data")
    pii = _pii(records, fields, settings.pii)
    licence = licence_check(version, commercial=settings.commercial).to_json()
    redacted = bool(version.manifest.get("redaction"))
    reasons = []
    if contamination:
        items = {(h["eval_set"], h["eval_index"]) for h in contamination}
        reasons.append(f"{len(contamination)} contamination hit(s) on {len(items)} eval item(s)")
    if leakage:
        reasons.append(f"{len(leakage)} training prompt(s) overlap validation or test prompts")
    if pii and not redacted:
        reasons.append(f"{len(pii)} personal data finding(s); `tutelage redact` removes them")
    if not licence["passed"]:
        reasons.extend(licence["problems"])
    report = CheckReport(
        version=version.name,
        hash=version.hash,
        passed=not reasons,
        reasons=reasons,
        contamination=contamination,
        leakage=leakage,
        pii=pii,
        licence=licence,
        redacted=redacted,
        eval_sets=[{"name": s.name, "items": s.count, "sha256": s.sha256} for s in sets],
        settings={**settings.overlap.to_json(), "commercial": settings.commercial},
    )
    with store.session() as session:
        record_event(
            session,
            version=version,
            kind="check",
            passed=report.passed,
            details=report.to_json(),
            actor=actor,
        )
    return report
