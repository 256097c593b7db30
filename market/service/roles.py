"""Who holds which role on chain, cached, and refreshed from the role events.

Every write is checked against the signer's role; asking the chain each time would put an RPC
round trip on every offer. The cache answers from memory and, at most every ``ttl_s``, reads the
``RoleGranted``/``RoleRevoked`` events since its last look and forgets what they touch. A chain
that was reset (a devnet restarted, a test's snapshot reverted) empties the cache.
"""

from __future__ import annotations

import logging
import threading
import time

from node.contracts import FlexRolesClient, role_id
from node.events import ChainReset, EventReader

__all__ = ["RoleCache"]

log = logging.getLogger(__name__)
_ROLE_EVENTS = frozenset({"RoleGranted", "RoleRevoked"})


class RoleCache:
    """``has(role, address)`` from memory, invalidated by the role events."""

    def __init__(self, roles: FlexRolesClient, ttl_s: float = 1.0) -> None:
        self.roles = roles
        self.ttl_s = ttl_s
        self._cache: dict[tuple[bytes, str], bool] = {}
        self._lock = threading.Lock()
        self._reader = EventReader(roles.w3, [roles], from_block=roles.w3.eth.block_number + 1)
        self._checked = time.monotonic()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.ttl_s:
            return
        self._checked = now
        try:
            events = self._reader.poll()
        except ChainReset as exc:
            log.warning("role cache: %s; forgetting every role", exc)
            self._cache.clear()
            self._reader.restart(self.roles.w3.eth.block_number + 1)
            return
        for event in events:
            if event.name in _ROLE_EVENTS:
                self._cache.pop((bytes(event.args["role"]), str(event.args["account"])), None)

    def has(self, role: str, address: str) -> bool:
        """Whether ``address`` holds ``role`` (``"DSO"``, ``"MARKET_OPERATOR"``, …)."""
        key = (role_id(role), address)
        with self._lock:
            self._refresh()
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        value = self.roles.has_role(key[0], address)
        with self._lock:
            self._cache[key] = value
        return value

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
