"""What a Light Node and a concentrator report about themselves.

Counters for this run plus what the durable buffer holds; ``line()`` is the one-line health
report the agents log every ``health_interval_s``. ``healthy`` goes false — and stays false until
an operator looks — when something happened that retrying cannot fix: a window anchored on
chain with another root, a device key not bound to its POD.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ConcentratorHealth", "LightNodeHealth"]


@dataclass
class LightNodeHealth:
    """Counters of one Light Node."""

    pod: str
    samples_read: int = 0
    samples_published: int = 0
    messages_published: int = 0
    samples_resent: int = 0
    meter_gaps: int = 0
    meter_errors: int = 0
    windows_closed: int = 0
    windows_anchored: int = 0
    windows_certified: int = 0
    windows_mismatch: int = 0
    manifests_published: int = 0
    setpoints_accepted: int = 0
    setpoints_duplicate: int = 0
    setpoints_rejected: Counter[str] = field(default_factory=Counter)
    bms_errors: int = 0
    root_conflicts: int = 0
    publish_errors: int = 0
    anchor_errors: int = 0
    last_error: str | None = None
    healthy: bool = True
    # From the buffer, refreshed when the line is made:
    samples_buffered: int = 0
    unpublished_messages: int = 0
    windows_pending: int = 0

    def error(self, message: str, *, fatal: bool = False) -> None:
        """Remember the last error; ``fatal``: retrying will not fix it."""
        self.last_error = message
        if fatal:
            self.healthy = False

    def line(self) -> str:
        rejected = sum(self.setpoints_rejected.values())
        return (
            f"lightnode {self.pod} {'OK' if self.healthy else 'UNHEALTHY'}: "
            f"samples buffered {self.samples_buffered}, read {self.samples_read}, "
            f"published {self.samples_published} in {self.messages_published} messages "
            f"({self.unpublished_messages} waiting); windows anchored {self.windows_anchored}, "
            f"certified {self.windows_certified}, pending {self.windows_pending}; "
            f"set-points accepted {self.setpoints_accepted}, rejected {rejected}; "
            f"last error: {self.last_error or 'none'}"
        )


@dataclass
class ConcentratorHealth:
    """Counters of one concentrator."""

    concentrator_id: str
    manifests_received: int = 0
    windows_accepted: int = 0
    windows_duplicate: int = 0
    windows_ignored: int = 0  # direct-mode manifests: not ours to batch
    refused: Counter[str] = field(default_factory=Counter)
    batches_anchored: int = 0
    windows_batched: int = 0
    batches_published: int = 0
    anchor_errors: int = 0
    last_error: str | None = None
    healthy: bool = True
    windows_pending: int = 0

    def error(self, message: str, *, fatal: bool = False) -> None:
        self.last_error = message
        if fatal:
            self.healthy = False

    def line(self) -> str:
        return (
            f"concentrator {self.concentrator_id} {'OK' if self.healthy else 'UNHEALTHY'}: "
            f"windows accepted {self.windows_accepted}, pending {self.windows_pending}, "
            f"batched {self.windows_batched} in {self.batches_anchored} batches; refused "
            f"{sum(self.refused.values())} {dict(self.refused) or ''}; "
            f"last error: {self.last_error or 'none'}"
        )
