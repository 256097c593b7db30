"""The auditor: re-derives what the platform reports from its public APIs and the chain, with
its own code (never the market's), and says what does not hold.

- ``audit.market``: a market session's clearing (``flexledger audit market``).
"""

__all__: list[str] = []
