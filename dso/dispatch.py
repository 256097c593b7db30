"""Dispatch (I-09): each recorded order becomes a signed set-point for its POD's Light Node.

The market announces every order it recorded on chain on ``flex/market/orders``
(:class:`~flexledger.messages.OrderAnnouncement`: the issuer's signed order, the awards it moves,
the offer's POD and direction). An offer is one POD, so an order is one set-point: the change of
active power ``power_w`` in the offer's direction for the order's MTUs, relative to the POD's
committed baseline. The DSO signs it and publishes it on ``flex/pod/{pod}/setpoint``
(``Signed[SetPoint]``), with a sequence number that increases per POD and an expiry at the end of
the order's MTUs.

Checks before anything is signed: the order's signature recovers to its claimed signer, who is
a DSO or TSO the platform knows; the announced order hash is the order's struct hash; the awards
belong to the order's offer and request, at the announced POD. The same order announced twice
(an MQTT redelivery) gives the same signed set-point again, not a new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from flexledger.messages import OrderAnnouncement, SetPoint, Signed, h32
from flexledger.protocols import Signer
from flexledger.time import MTU_S
from node.eip712 import Domain
from node.signing import SignatureError, message_hash, sign_message, verify_envelope

__all__ = ["DispatchError", "Dispatcher"]

log = logging.getLogger(__name__)


class DispatchError(ValueError):
    """An order announcement the DSO does not turn into a set-point, and why."""


class Dispatcher:
    """Turns order announcements into signed set-points (see the module docstring).

    Args:
        signer: the DSO's key (signs the set-points).
        domain: the EIP-712 domain orders are verified in.
        issuers: addresses allowed to issue orders (the DSO's and the TSO's).
        now_s: the clock (``flexledger.time``); a POD's first sequence number is the time of
            its first set-point in seconds, so sequences keep increasing across restarts.
    """

    def __init__(
        self,
        signer: Signer,
        domain: Domain,
        issuers: Iterable[str],
        now_s: Callable[[], int],
    ) -> None:
        self.signer = signer
        self.domain = domain
        self.issuers = {a.lower() for a in issuers}
        self.now_s = now_s
        self._seq: dict[str, int] = {}
        self._issued: dict[str, Signed[SetPoint]] = {}
        self._lock = threading.Lock()

    @property
    def issued(self) -> dict[str, Signed[SetPoint]]:
        """order hash → the signed set-point issued for it."""
        return dict(self._issued)

    def setpoint(self, announcement: OrderAnnouncement) -> Signed[SetPoint]:
        """The signed set-point of an announced order (the same one again for a duplicate).

        Raises:
            DispatchError: the order's signature, issuer, hash or awards do not hold.
        """
        order_env = announcement.order
        order = order_env.message
        try:
            issuer = verify_envelope(order_env, self.domain)
        except SignatureError as exc:
            raise DispatchError(f"order: {exc}") from exc
        if issuer.lower() not in self.issuers:
            raise DispatchError(f"order issued by {issuer}, who is neither the DSO nor the TSO")
        order_hash = h32(message_hash(order))
        if order_hash != announcement.order_hash:
            raise DispatchError("the announced order hash is not the order's struct hash")
        for award in announcement.awards:
            if (award.offer_hash, award.request_hash) != (order.offer_hash, order.request_hash):
                raise DispatchError("an announced award belongs to another offer or request")
            if award.pod != announcement.pod:
                raise DispatchError("an announced award is at another POD")
        with self._lock:
            done = self._issued.get(order_hash)
            if done is not None:
                return done
            now = int(self.now_s())
            seq = max(self._seq.get(announcement.pod, 0) + 1, now)
            self._seq[announcement.pod] = seq
            message = SetPoint(
                order_hash=order_hash,
                pod=announcement.pod,
                direction=announcement.direction,
                mtu_start_s=order.mtu_start_s,
                mtu_count=order.mtu_count,
                power_w=order.power_w,
                seq=seq,
                expiry_s=order.mtu_start_s + order.mtu_count * MTU_S,
            )
            signed = sign_message(self.signer, message)
            self._issued[order_hash] = signed
        log.info(
            "set-point %s for %s: %s %d W, %d MTU(s) from %d (seq %d)",
            order_hash[:10],
            announcement.pod,
            announcement.direction,
            order.power_w,
            order.mtu_count,
            order.mtu_start_s,
            seq,
        )
        return signed
