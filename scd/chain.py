"""What the SCD knows of the chain: device bindings, roles, anchors — cached, kept fresh by
events.

Device bindings and roles are read lazily (one view call per POD or account, then cached) and
corrected by the events the certifier polls: ``DeviceRegistered``/``DeviceRevoked`` rebind or
unbind a POD at once, ``RoleGranted``/``RoleRevoked``/``FrOwner*`` drop an account's cached
roles. A POD with no device is re-asked at most every ``negative_ttl_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from eth_utils import to_checksum_address

from node.contracts import BaselineCommitment, FlexContracts, role_id
from node.eip712 import Domain
from node.events import ChainEvent, EventReader

__all__ = ["Binding", "ChainView"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Binding:
    """Why a device may or may not sign for a POD: ``ok`` or a rejection reason."""

    ok: bool
    reason: str = ""


class ChainView:
    """Cached reads of one flexledger deployment, and its event reader.

    Thread-safe: the ingestor's worker thread and the API's threads read it while the
    certifier applies events.
    """

    def __init__(
        self,
        contracts: FlexContracts,
        *,
        from_block: int = 0,
        negative_ttl_s: float = 2.0,
        role_ttl_s: float = 60.0,
    ) -> None:
        self.c = contracts
        self.domain: Domain = contracts.roles.domain()
        self.chain_id = self.domain.chain_id
        self.window_s = contracts.anchor.window_seconds()
        self.from_block = from_block
        self.negative_ttl_s = negative_ttl_s
        self.role_ttl_s = role_ttl_s
        self.reader = EventReader(
            contracts.anchor.w3,
            [contracts.roles, contracts.anchor, contracts.baselines],
            from_block=from_block,
        )
        self._lock = threading.Lock()
        self._device: dict[bytes, tuple[bytes | None, float]] = {}  # pod32 -> (device20, at)
        self._pod_of: dict[bytes, bytes] = {}  # device20 -> pod32
        self._revoked: set[bytes] = set()  # device20 seen revoked (and not bound again)
        self._unbound: dict[bytes, float] = {}  # device20 -> when podOf said "none"
        self._roles: dict[tuple[bytes, str], tuple[bool, float]] = {}
        self._aggregator_of: dict[str, tuple[str | None, float]] = {}

    # -- devices ------------------------------------------------------------------------------
    def device_of(self, pod32: bytes) -> bytes | None:
        """The 20-byte device key bound to the POD now (cached)."""
        now = time.monotonic()
        with self._lock:
            hit = self._device.get(pod32)
        if hit is not None and (hit[0] is not None or now - hit[1] < self.negative_ttl_s):
            return hit[0]
        address = self.c.anchor.device_of(pod32)
        device = bytes.fromhex(address[2:]) if address else None
        with self._lock:
            self._device[pod32] = (device, now)
            if device is not None:
                self._pod_of[device] = pod32
        return device

    def binding(self, pod32: bytes, signer20: bytes) -> Binding:
        """May ``signer20`` sign measurements of ``pod32``? If not, the rejection reason."""
        device = self.device_of(pod32)
        if device == signer20:
            return Binding(True)
        with self._lock:
            if signer20 in self._revoked:
                return Binding(False, "revoked")
            other = self._pod_of.get(signer20)
        if other is not None and other != pod32:
            return Binding(False, "wrong_pod")
        if other is None and device is not None:
            # the signer may be bound elsewhere without our having looked it up (asked once per
            # negative_ttl_s: a stranger's flood of messages is not a flood of chain reads)
            now = time.monotonic()
            with self._lock:
                asked = self._unbound.get(signer20)
            if asked is None or now - asked >= self.negative_ttl_s:
                pod_of = self.c.anchor.pod_of(to_checksum_address(signer20))
                with self._lock:
                    if pod_of is not None:
                        self._pod_of[signer20] = pod_of
                    else:
                        self._unbound[signer20] = now
                if pod_of is not None and pod_of != pod32:
                    return Binding(False, "wrong_pod")
        return Binding(False, "unregistered")

    # -- roles -------------------------------------------------------------------------------
    def has_role(self, role: str, account: str) -> bool:
        rid = role_id(role)
        key = (rid, to_checksum_address(account))
        now = time.monotonic()
        with self._lock:
            hit = self._roles.get(key)
        if hit is not None and now - hit[1] < self.role_ttl_s:
            return hit[0]
        value = self.c.roles.has_role(rid, key[1])
        with self._lock:
            self._roles[key] = (value, now)
        return value

    def aggregator_of(self, owner: str) -> str | None:
        owner = to_checksum_address(owner)
        now = time.monotonic()
        with self._lock:
            hit = self._aggregator_of.get(owner)
        if hit is not None and now - hit[1] < self.role_ttl_s:
            return hit[0]
        value = self.c.roles.aggregator_of(owner)
        with self._lock:
            self._aggregator_of[owner] = (value, now)
        return value

    def baseline_of(self, brp: str, day_s: int) -> BaselineCommitment | None:
        """Not cached: a baseline upload is rare and must see the newest commit."""
        return self.c.baselines.baseline_of(brp, day_s)

    def block_number(self) -> int:
        return int(self.c.anchor.w3.eth.block_number)

    # -- events ------------------------------------------------------------------------------
    def apply(self, event: ChainEvent) -> None:
        """Correct the caches for a device or role event (others are ignored here)."""
        a = event.args
        now = time.monotonic()
        with self._lock:
            if event.name == "DeviceRegistered":
                device = bytes.fromhex(a["device"][2:])
                pod32 = bytes(a["pod"])
                self._device[pod32] = (device, now)
                self._pod_of[device] = pod32
                self._revoked.discard(device)
                self._unbound.pop(device, None)
                previous = a.get("previous")
                if previous and int(previous, 16):
                    prev = bytes.fromhex(previous[2:])
                    self._pod_of.pop(prev, None)
                    self._revoked.add(prev)
                log.info("device %s bound to POD 0x%s", a["device"], pod32.hex()[:12])
            elif event.name == "DeviceRevoked":
                device = bytes.fromhex(a["device"][2:])
                pod32 = bytes(a["pod"])
                self._device[pod32] = (None, now)
                self._pod_of.pop(device, None)
                self._revoked.add(device)
                log.info("device %s revoked (POD 0x%s)", a["device"], pod32.hex()[:12])
            elif event.name in ("RoleGranted", "RoleRevoked"):
                account = to_checksum_address(a["account"])
                for key in [k for k in self._roles if k[1] == account]:
                    del self._roles[key]
            elif event.name in ("FrOwnerGranted", "FrOwnerRevoked"):
                self._aggregator_of.pop(to_checksum_address(a["owner"]), None)
                owner = to_checksum_address(a["owner"])
                for key in [k for k in self._roles if k[1] == owner]:
                    del self._roles[key]
