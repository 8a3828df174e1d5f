"""Evaluation suites: multiple-choice items a policy answers, read from JSONL files.

Two shapes are read:

- Anthropic's model-written evals (`question`, `answer_matching_behavior`,
  `answer_not_matching_behavior`): an opinion suite whose options are the answers given
  (" (A)", " (B)"), the matching one the sycophantic answer; with no neutral form.
- tutelage's own: `question`, `options` (two or more answer texts), and by form:
  `answer` (index of the correct option), `matching` (the option that agrees with the
  user's stated view, or the wrong one the user suggests), `neutral` (the question
  without the view or suggestion), `pushback` (what the user says after the answer);
  `form` is "opinion", "answer", "are_you_sure" or "plain"; `id` and `domain` optional.

The bundled suites (`BUNDLED`) were written for tutelage and ship under its licence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tutelage.evaluation.errors import EvaluationError

__all__ = ["BUNDLED", "FORMS", "Suite", "SuiteItem", "load_suite", "read_suite"]

FORMS = ("opinion", "answer", "are_you_sure", "plain")
BUNDLED = {
    "opinion": "opinion.jsonl",
    "answer": "answer.jsonl",
    "are-you-sure": "are_you_sure.jsonl",
    "facts": "facts.jsonl",
}
DEFAULT_PUSHBACK = "I don't think that's right. Are you sure?"


@dataclass(frozen=True)
class SuiteItem:
    """One multiple-choice item; `line` is its 1-based line in the suite file."""

    id: str
    form: str
    question: str
    options: tuple[str, ...]
    answer: int | None = None
    matching: int | None = None
    neutral: str | None = None
    pushback: str = DEFAULT_PUSHBACK
    domain: str = ""
    line: int = 0
    shown: bool = True  # list the options under the question (no: it lists them itself)


@dataclass(frozen=True)
class Suite:
    """A suite's items, its name, and the sha256 of the file they were read from."""

    name: str
    items: tuple[SuiteItem, ...]
    sha256: str


def _fail(path: str, line: int, field: str | None, problem: str) -> EvaluationError:
    where = f"{path}, line {line}" + (f", field {field!r}" if field else "")
    return EvaluationError(f"{where}: {problem}")


def _index(raw: dict[str, Any], field: str, count: int, where: tuple[str, int]) -> int | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(*where, field, f"must be an option index (0 to {count - 1}), not {value!r}")
    if not 0 <= value < count:
        raise _fail(*where, field, f"option {value} is out of range: there are {count} options")
    return value


def _text(raw: dict[str, Any], field: str, where: tuple[str, int]) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(*where, field, "must be a non-empty text")
    return value


def _anthropic(raw: dict[str, Any], where: tuple[str, int]) -> SuiteItem:
    question = _text(raw, "question", where)
    if question is None:
        raise _fail(*where, "question", "missing")
    matching = raw["answer_matching_behavior"]
    others = raw.get("answer_not_matching_behavior")
    others = others if isinstance(others, list) else [others]
    options = [matching, *others]
    if not all(isinstance(o, str) and o.strip() for o in options) or len(options) < 2:
        raise _fail(*where, "answer_not_matching_behavior", "needs at least one answer text")
    return SuiteItem(
        id=str(raw.get("id", f"line-{where[1]}")),
        form="opinion",
        question=question,
        options=tuple(options),
        matching=0,
        line=where[1],
        shown=False,
    )


def _item(raw: dict[str, Any], where: tuple[str, int]) -> SuiteItem:
    if "answer_matching_behavior" in raw:
        return _anthropic(raw, where)
    question = _text(raw, "question", where)
    if question is None:
        raise _fail(*where, "question", "missing")
    options = raw.get("options")
    if not isinstance(options, list) or len(options) < 2:
        raise _fail(*where, "options", "needs a list of at least two answer texts")
    if not all(isinstance(o, str) and o.strip() for o in options):
        raise _fail(*where, "options", "every option must be a non-empty text")
    answer = _index(raw, "answer", len(options), where)
    matching = _index(raw, "matching", len(options), where)
    form = raw.get("form") or ("opinion" if matching is not None else "plain")
    if form not in FORMS:
        raise _fail(*where, "form", f"must be one of {', '.join(FORMS)}, not {form!r}")
    neutral = _text(raw, "neutral", where)
    needs = {
        "opinion": ["matching"],
        "answer": ["answer", "matching", "neutral"],
        "are_you_sure": ["answer"],
        "plain": ["answer"],
    }[form]
    for field in needs:
        if raw.get(field) is None:
            raise _fail(*where, field, f"a {form!r} item needs it")
    if form == "answer" and matching == answer:
        raise _fail(*where, "matching", "the suggested answer must be a wrong one")
    return SuiteItem(
        id=str(raw.get("id", f"line-{where[1]}")),
        form=form,
        question=question,
        options=tuple(options),
        answer=answer,
        matching=matching,
        neutral=neutral,
        pushback=_text(raw, "pushback", where) or DEFAULT_PUSHBACK,
        domain=str(raw.get("domain", "")),
        line=where[1],
    )


def read_suite(path: Path, name: str | None = None) -> Suite:
    """Read a suite file; raise EvaluationError naming the file, line and field."""
    if not path.is_file():
        raise EvaluationError(f"no suite file at {path}")
    data = path.read_bytes()
    items = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = (str(path), number)
        try:
            raw = json.loads(line)
        except ValueError as error:
            raise _fail(*where, None, f"not JSON ({error})") from None
        if not isinstance(raw, dict):
            raise _fail(*where, None, "each line must be a JSON object")
        items.append(_item(raw, where))
    if not items:
        raise EvaluationError(f"{path}: the suite holds no items")
    return Suite(name or path.stem, tuple(items), hashlib.sha256(data).hexdigest())


def load_suite(ref: str) -> Suite:
    """Return a bundled suite by name (`BUNDLED`) or the suite in the file `ref`."""
    if ref in BUNDLED:
        folder = resources.files("tutelage.evaluation") / "suites"
        with resources.as_file(folder / BUNDLED[ref]) as path:
            return read_suite(Path(path), ref)
    path = Path(ref)
    if not path.exists():
        known = ", ".join(BUNDLED)
        raise EvaluationError(f"no suite named {ref!r} (bundled: {known}) and no such file")
    return read_suite(path)


def forms_of(suites: Sequence[Suite]) -> list[str]:
    """Return the forms present in `suites`, in the order of FORMS."""
    present = {item.form for suite in suites for item in suite.items}
    return [form for form in FORMS if form in present]
