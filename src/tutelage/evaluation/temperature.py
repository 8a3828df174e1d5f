"""Temperature scaling of a reward model, fitted on a held-out split and saved with it.

The temperature divides the reward margin before the sigmoid; it changes no verdict,
only how sure the model says it is. It is fitted on one half of the pairs (split by
prompt) and measured on the other, and written to the model folder as
`calibration.json`, where `tutelage score` and `tutelage eval reward` find it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tutelage.evaluation.calibration import fit_temperature, measure_calibration
from tutelage.evaluation.errors import EvaluationError
from tutelage.files import write_text_whole
from tutelage.training.data import TrainingPair, split_by_prompt

__all__ = [
    "CALIBRATION_FILE",
    "TemperatureFit",
    "fit_on_split",
    "save_temperature",
    "saved_temperature",
]

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class TemperatureFit:
    """A temperature fitted on `fitted_pairs` and measured on `measured_pairs` (other
    prompts): expected calibration error before and after."""

    temperature: float
    source: str
    fitted_pairs: int
    measured_pairs: int
    ece_before: float
    ece_after: float


def fit_on_split(
    source: str, pairs: Sequence[TrainingPair], margins: Sequence[float], *, seed: int = 0
) -> TemperatureFit:
    """Return the temperature fitted on half the prompts and measured on the rest."""
    if len(pairs) != len(margins):
        raise ValueError(f"{len(margins)} margins for {len(pairs)} pairs")
    margin_of = {id(p): m for p, m in zip(pairs, margins, strict=True)}
    try:
        fit, measure = split_by_prompt(list(pairs), fraction=0.5, seed=seed)
    except ValueError as error:
        raise EvaluationError(f"cannot fit a temperature on {source}: {error}") from None
    temperature = fit_temperature([margin_of[id(p)] for p in fit])
    measured = [margin_of[id(p)] for p in measure]
    return TemperatureFit(
        temperature=temperature,
        source=source,
        fitted_pairs=len(fit),
        measured_pairs=len(measure),
        ece_before=measure_calibration(measured).ece,
        ece_after=measure_calibration(measured, temperature=temperature).ece,
    )


def save_temperature(model_dir: str | Path, fit: TemperatureFit) -> Path:
    """Write `fit` into the model folder, whole or not at all; return the file."""
    path = Path(model_dir) / CALIBRATION_FILE
    write_text_whole(path, json.dumps(asdict(fit), indent=2) + "\n")
    return path


def saved_temperature(model_dir: str | Path) -> float | None:
    """Return the temperature saved with the model at `model_dir`, or None."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        temperature = float(json.loads(path.read_text(encoding="utf-8"))["temperature"])
    except (ValueError, KeyError, TypeError) as error:
        raise EvaluationError(f"{path}: no valid temperature ({error})") from None
    if not temperature > 0:
        raise EvaluationError(f"{path}: the temperature must be positive, not {temperature}")
    return temperature
