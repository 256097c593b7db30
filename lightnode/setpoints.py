"""Which set-points a Light Node obeys: signed by a key that holds DSO_ROLE on chain, for its
own POD, not expired by the one clock.

A set-point moves real appliances, so everything that cannot be proven is refused, logged and
counted, and never reaches the BMS: a signature that does not recover to its claimed signer, a
signer without the DSO role, another POD's set-point, an expired one. The role is read from
FlexRoles and cached for a short while (a set-point storm must not become a storm of chain
calls; a revoked DSO loses its power within ``role_ttl_s``). When the chain cannot be asked and
no answer is cached, the set-point is refused (``role_unknown``): obeying an unverified order is
worse than missing one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from flexledger.messages.common import Signed, id32
from flexledger.messages.market import SetPoint
from flexledger.protocols import Clock
from node.contracts import FlexRolesClient
from node.eip712 import Domain, SignatureError
from node.signing import message_hash, verify_envelope

__all__ = ["RejectReason", "SetPointGate", "SetPointRejected"]

log = logging.getLogger(__name__)

RejectReason = Literal[
    "malformed", "bad_signature", "wrong_pod", "expired", "wrong_role", "role_unknown", "conflict"
]


class SetPointRejected(Exception):
    """A set-point that must not reach the BMS, and why (``reason``)."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: RejectReason = reason


class SetPointGate:
    """Checks a ``Signed[SetPoint]`` for one POD; ``check`` returns its struct hash or raises
    ``SetPointRejected``."""

    def __init__(
        self,
        pod: str,
        domain: Domain,
        roles: FlexRolesClient,
        clock: Clock,
        *,
        role_ttl_s: float = 60.0,
        negative_ttl_s: float = 10.0,
    ) -> None:
        self.pod = pod
        self.pod32 = id32(pod)
        self.domain = domain
        self.roles = roles
        self.clock = clock
        self.role_ttl_s = role_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._roles: dict[str, tuple[bool, float]] = {}

    async def check(self, envelope: Signed[SetPoint]) -> bytes:
        """The set-point's struct hash if it may be obeyed; ``SetPointRejected`` otherwise."""
        sp = envelope.message
        try:
            signer = verify_envelope(envelope, self.domain)
        except SignatureError as exc:
            raise SetPointRejected("bad_signature", str(exc)) from None
        if sp.pod != self.pod:
            raise SetPointRejected(
                "wrong_pod", f"set-point for {sp.pod} on the topic of {self.pod}"
            )
        now = self.clock.now_s()
        if now > sp.expiry_s:
            raise SetPointRejected("expired", f"expired at {sp.expiry_s}, now {now}")
        if not await self._is_dso(signer):
            raise SetPointRejected("wrong_role", f"{signer} does not hold DSO_ROLE")
        return message_hash(sp)

    async def _is_dso(self, signer: str) -> bool:
        cached = self._roles.get(signer)
        now = time.monotonic()
        if cached is not None:
            is_dso, at = cached
            if now - at < (self.role_ttl_s if is_dso else self.negative_ttl_s):
                return is_dso
        try:
            is_dso = await asyncio.to_thread(self.roles.has_role, "DSO", signer)
        except Exception as exc:
            if cached is not None and cached[0]:
                # A DSO we knew a moment ago: the chain is down, not the DSO's role.
                log.warning("role check of %s failed (%s); using the cached DSO role", signer, exc)
                return True
            raise SetPointRejected(
                "role_unknown", f"cannot read {signer}'s role on chain: {exc}"
            ) from None
        self._roles[signer] = (is_dso, now)
        return is_dso
