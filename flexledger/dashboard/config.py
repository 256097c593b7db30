"""What the dashboard reads and who may read it: :class:`DashboardConfig` and the
``FLEX_DASHBOARD_AUTH`` tokens (:class:`DashboardAuth`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ROLE_VIEWS", "VIEWS", "DashboardAuth", "DashboardConfig", "Principal"]

#: The views, in menu order: (path, title).
VIEWS: tuple[tuple[str, str], ...] = (
    ("grid", "Grid"),
    ("market", "Market"),
    ("activation", "Activation"),
    ("ledger", "Ledger"),
    ("settlement", "Settlement"),
)

#: What each role sees (README, "Dashboard"). The grid view is the DSO's own model of its
#: feeder (voltages, violations): the market operator and the DSO only.
ROLE_VIEWS: dict[str, frozenset[str]] = {
    "operator": frozenset(v for v, _ in VIEWS),
    "dso": frozenset({"grid", "market", "activation", "ledger", "settlement"}),
    "tso": frozenset({"market", "activation", "settlement"}),
    "aggregator": frozenset({"market", "activation", "ledger", "settlement"}),
    "auditor": frozenset({"market", "ledger", "settlement"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is looking: a role and a name (``anonymous`` operator without auth)."""

    role: str
    name: str = ""

    @property
    def views(self) -> frozenset[str]:
        return ROLE_VIEWS[self.role]

    def may(self, view: str) -> bool:
        return view in self.views


@dataclass
class DashboardAuth:
    """Bearer tokens, each with a role (``FLEX_DASHBOARD_AUTH``).

    The variable holds either a path to a JSON file
    ``{"tokens": [{"token": "…", "role": "dso", "name": "…"}, …]}`` or, inline, a comma-separated
    list ``TOKEN=ROLE[:NAME]``. Roles: ``operator``, ``dso``, ``tso``, ``aggregator``,
    ``auditor`` (:data:`ROLE_VIEWS`).
    """

    tokens: dict[str, Principal] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> DashboardAuth:
        value = value.strip()
        if not value:
            raise ValueError("FLEX_DASHBOARD_AUTH is empty")
        path = Path(value)
        entries: list[dict[str, Any]]
        if path.is_file():
            data = json.loads(path.read_text("utf-8"))
            entries = data["tokens"] if isinstance(data, dict) else data
        elif "=" in value:
            entries = []
            for item in value.split(","):
                token, _, rest = item.strip().partition("=")
                role, _, name = rest.partition(":")
                entries.append({"token": token.strip(), "role": role.strip(), "name": name})
        else:
            raise ValueError(f"FLEX_DASHBOARD_AUTH: {value!r} is neither a file nor TOKEN=ROLE,…")
        tokens: dict[str, Principal] = {}
        for e in entries:
            token, role = str(e.get("token", "")), str(e.get("role", ""))
            if len(token) < 8:
                raise ValueError("FLEX_DASHBOARD_AUTH: a token needs at least 8 characters")
            if role not in ROLE_VIEWS:
                known = ", ".join(sorted(ROLE_VIEWS))
                raise ValueError(f"FLEX_DASHBOARD_AUTH: unknown role {role!r} ({known})")
            tokens[token] = Principal(role, str(e.get("name") or role))
        return cls(tokens)

    @classmethod
    def from_env(cls) -> DashboardAuth | None:
        value = os.environ.get("FLEX_DASHBOARD_AUTH", "")
        return cls.parse(value) if value.strip() else None

    def principal(self, token: str | None) -> Principal | None:
        return self.tokens.get(token) if token else None


@dataclass
class DashboardConfig:
    """Where the services and the chain answer (``ServiceUrls`` of the stack, or the
    ``--*-url`` options of ``flexledger serve dashboard``).

    ``anchor_address``: the MeasurementAnchor contract (from the deployment's address book),
    which the browser calls to verify a sample. ``browser_rpc_url``: the JSON-RPC URL the
    browser calls (default ``rpc_url``: loopback in the embedded default).
    """

    market_url: str
    scd_url: str
    rpc_url: str
    dso_url: str | None = None
    aggregator_urls: dict[str, str] = field(default_factory=dict)
    audit_url: str | None = None
    mqtt_url: str | None = None
    anchor_address: str | None = None
    browser_rpc_url: str | None = None
    poll_s: float = 2.0
    timeout_s: float = 15.0

    @classmethod
    def from_urls(cls, urls: Any, **kw: Any) -> DashboardConfig:
        """From a ``flexledger.stack.services.ServiceUrls``-like object."""
        return cls(
            market_url=urls.market,
            scd_url=urls.scd,
            rpc_url=urls.rpc,
            dso_url=urls.dso or None,
            aggregator_urls=dict(urls.aggregators),
            audit_url=getattr(urls, "audit", None) or None,
            mqtt_url=urls.mqtt or None,
            **kw,
        )
