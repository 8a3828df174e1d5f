"""Quality of expert judgments: agreement, consensus, reliability and detection.

Pure functions over pandas frames (described in `analyse`); loading from the store and
reporting live elsewhere.

The names load on first use: the statistics stack (scipy, scikit-learn, crowd-kit)
takes a second or more to import, and the server and the CLI need it only for the
pages and commands that compute quality.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tutelage.quality.agreement import (
        AgreementReport,
        PairAgreement,
        Statistic,
        agreement_report,
        fleiss_kappa,
        krippendorff_alpha,
        pairwise_agreement,
    )
    from tutelage.quality.analysis import METHODS, QualityAnalysis, analyse
    from tutelage.quality.consensus import (
        LABELS,
        ConsensusLabel,
        adjudicate,
        bradley_terry,
        dawid_skene,
        majority_vote,
    )
    from tutelage.quality.detection import FLAG_KINDS, ExpertFlag, expert_flags
    from tutelage.quality.reliability import (
        ExpertReliability,
        WorkerEvidence,
        expert_reliability,
        worker_evidence,
    )

__all__ = [
    "FLAG_KINDS",
    "LABELS",
    "METHODS",
    "AgreementReport",
    "ConsensusLabel",
    "ExpertFlag",
    "ExpertReliability",
    "PairAgreement",
    "QualityAnalysis",
    "Statistic",
    "WorkerEvidence",
    "adjudicate",
    "agreement_report",
    "analyse",
    "bradley_terry",
    "dawid_skene",
    "expert_flags",
    "expert_reliability",
    "fleiss_kappa",
    "krippendorff_alpha",
    "majority_vote",
    "pairwise_agreement",
    "worker_evidence",
]

_MODULES = {
    "AgreementReport": "agreement",
    "PairAgreement": "agreement",
    "Statistic": "agreement",
    "agreement_report": "agreement",
    "fleiss_kappa": "agreement",
    "krippendorff_alpha": "agreement",
    "pairwise_agreement": "agreement",
    "METHODS": "analysis",
    "QualityAnalysis": "analysis",
    "analyse": "analysis",
    "LABELS": "consensus",
    "ConsensusLabel": "consensus",
    "adjudicate": "consensus",
    "bradley_terry": "consensus",
    "dawid_skene": "consensus",
    "majority_vote": "consensus",
    "FLAG_KINDS": "detection",
    "ExpertFlag": "detection",
    "expert_flags": "detection",
    "ExpertReliability": "reliability",
    "WorkerEvidence": "reliability",
    "expert_reliability": "reliability",
    "worker_evidence": "reliability",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value
