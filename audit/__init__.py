"""The auditor: re-derives what the platform reports from its public APIs and the chain, with
its own code (never the market's or the SCD's), and says what does not hold.

- ``audit.market``: a market session's clearing (``flexledger audit market``).
- ``audit.measurements``: every window's samples (SCD API) against its root on chain —
  certified, mismatch (which samples) or not anchored (``flexledger audit measurements``).
- ``audit.proof``: a sample's Merkle proof from the SCD, checked locally and with the
  contract's ``verify`` / ``verifyBatched`` views (``flexledger audit proof``).
- ``audit.settlement``: a session's settlement re-derived from the SCD's samples and baselines,
  the market's orders and outcome and the chain, amounts and token transfers included
  (``flexledger audit settlement``).
- ``audit.baselines``: the baseline methods, and each method's bias and CV(RMSE) on days
  without activation (``flexledger baseline report``).
"""

from audit.baselines import BaselineReport, baseline_report
from audit.measurements import MeasurementAudit, WindowReport, audit_measurements
from audit.proof import ProofCheck, check_proof
from audit.settlement import SettlementAudit, audit_settlement

__all__ = [
    "BaselineReport",
    "MeasurementAudit",
    "ProofCheck",
    "SettlementAudit",
    "WindowReport",
    "audit_measurements",
    "audit_settlement",
    "baseline_report",
    "check_proof",
]
