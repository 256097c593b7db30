"""Assertions both end-to-end days make on their results."""

from __future__ import annotations

from typing import Any


def assert_dso_served_before_tso(sessions: list[Any]) -> None:
    """Every audited session's market audit checked that TSO requests were served only with
    what the DSO's left, and found it so."""
    for s in sessions:
        if s.audit_market is None:
            continue
        checks = [f for f in s.audit_market.get("findings", []) if "TSO" in str(f)]
        assert checks, s.audit_market
        assert all(f.get("ok", True) for f in checks if isinstance(f, dict)), checks
