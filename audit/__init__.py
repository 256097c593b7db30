"""The auditor: re-derives what the platform reports from its public APIs and the chain, with
its own code (never the market's or the SCD's), and says what does not hold.

- ``audit.market``: a market session's clearing (``flexledger audit market``).
- ``audit.measurements``: every window's samples (SCD API) against its root on chain —
  certified, mismatch (which samples) or not anchored (``flexledger audit measurements``).
- ``audit.proof``: a sample's Merkle proof from the SCD, checked locally and with the
  contract's ``verify`` / ``verifyBatched`` views (``flexledger audit proof``).
"""

from audit.measurements import MeasurementAudit, WindowReport, audit_measurements
from audit.proof import ProofCheck, check_proof

__all__ = ["MeasurementAudit", "ProofCheck", "WindowReport", "audit_measurements", "check_proof"]
