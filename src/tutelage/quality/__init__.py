"""Quality of expert judgments: agreement, consensus, reliability and detection.

Pure functions over pandas frames (described in `analyse`); loading from the store and
reporting live elsewhere.
"""

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
