"""A BMS for a Light Node that has none to drive: it logs and keeps the set-points it is given.

A meter gateway without a building behind it (or a test) still checks, records and anchors the
set-points addressed to its POD; it just has nobody to hand them to.
"""

from __future__ import annotations

import logging

from flexledger.messages.market import SetPoint

__all__ = ["LogBms"]

log = logging.getLogger(__name__)


class LogBms:
    """``flexledger.protocols.Bms`` that logs each verified set-point and remembers it."""

    def __init__(self, pod: str) -> None:
        self.pod = pod
        self.applied: list[SetPoint] = []

    async def apply(self, setpoint: SetPoint) -> None:
        self.applied.append(setpoint)
        log.info(
            "BMS %s: set-point %s %d W for %d MTU(s) from %d (order %s)",
            self.pod,
            setpoint.direction.name.lower(),
            setpoint.power_w,
            setpoint.mtu_count,
            setpoint.mtu_start_s,
            setpoint.order_hash,
        )
