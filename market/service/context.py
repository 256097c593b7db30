"""Everything a service call needs, built once per app: database, chain, clock, announcer."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from flexledger.protocols import Clock
from market.service.announce import Announcer
from market.service.chain import MarketChain
from market.service.roles import RoleCache
from market.service.scd import ScdReader
from market.settings import MarketSettings
from node.eip712 import Domain
from node.signing import LocalSigner

__all__ = ["MarketContext"]


@dataclass
class MarketContext:
    """The market's state and its connections.

    ``lock`` serialises every write of this process: a gate closure and an offer arriving at
    the same instant must not both succeed. ``counters`` counts refusals by code (conflicts
    are counted, as docs/API.md asks). ``wake`` tells the scheduler that a gate time changed.
    ``scd`` is what settlement reads the SCD through (None: no settlement).
    """

    settings: MarketSettings
    engine: Engine
    chain: MarketChain
    roles: RoleCache
    domain: Domain
    clock: Clock
    announcer: Announcer
    operator: LocalSigner
    lock: threading.RLock = field(default_factory=threading.RLock)
    counters: Counter[str] = field(default_factory=Counter)
    wake: Callable[[], None] = lambda: None
    scd: ScdReader | None = None
