"""The Market Platform's service layer: what the API's thin handlers call.

- ``build_context(settings, …)``: database (migrated), chain, roles, clock, announcer;
- ``sessions``: open, gate closure, clearing rounds, validation rounds, final outcome;
- ``intake``: signed offers, requests and validations; ``activation``: orders;
- ``reads``: every public view; ``scheduler.GateScheduler``: gates closed on the clock;
- ``clearing_port``: the adapter to ``market.clearing``;
- ``settlement``: settle a session's activated awards from the SCD's certified measures (I-15),
  on chain with the payments (I-16); ``settlement_rules`` the rule, ``baselines`` the methods,
  ``scd`` the SCD reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import delete, insert

from flexledger.protocols import Clock
from flexledger.storage import is_postgres, make_engine, migrate
from flexledger.time import WallClock
from flexledger.transport import Topics
from market import db
from market.service.announce import Announcer, MemoryAnnouncer
from market.service.chain import MarketChain
from market.service.context import MarketContext
from market.service.roles import RoleCache
from market.service.scd import HttpScdReader, ScdReader
from market.settings import MarketSettings
from node.contracts import FlexContracts
from node.keys import load_account
from node.signing import LocalSigner

__all__ = ["MIGRATIONS", "MarketContext", "build_context", "load_areas", "set_areas"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _connect(settings: MarketSettings) -> FlexContracts:
    from node.addressbook import AddressBook
    from node.devnet import connect

    if not settings.rpc_url:
        raise ValueError("the market needs a chain: set FLEX_RPC_URL or pass contracts")
    book = settings.address_book or settings.home / "addresses.json"
    return FlexContracts.from_address_book(connect(settings.rpc_url), AddressBook.load(book))


def load_areas(path: Path) -> dict[str, str]:
    """A JSON object {POD code: substation area} (the areas file)."""
    data = json.loads(Path(path).read_text("utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of POD code -> area name")
    return dict(data)


def set_areas(ctx: MarketContext, pod_area: Mapping[str, str]) -> None:
    """Replace the areas of these PODs (what locates TSO requests)."""
    if not pod_area:
        return
    with ctx.engine.begin() as conn:
        conn.execute(delete(db.areas).where(db.areas.c.pod.in_(list(pod_area))))
        conn.execute(insert(db.areas), [{"pod": p, "area": a} for p, a in pod_area.items()])


def build_context(
    settings: MarketSettings,
    *,
    contracts: FlexContracts | None = None,
    clock: Clock | None = None,
    announcer: Announcer | None = None,
    areas: Mapping[str, str] | None = None,
    scd: ScdReader | None = None,
) -> MarketContext:
    """Everything the market needs, connected; the database migrated to the newest revision.
    Settlement reads the SCD through ``scd``, else over HTTP at ``FLEX_SCD_URL``."""
    url = settings.database_url()
    engine = make_engine(url, schema=settings.db_schema)
    schema = settings.db_schema if is_postgres(engine) else None
    migrate(engine, MIGRATIONS, schema=schema)
    contracts = contracts or _connect(settings)
    operator = load_account(settings.market_operator_key)
    domain = contracts.roles.domain()
    ctx = MarketContext(
        settings=settings,
        engine=engine,
        chain=MarketChain(contracts, operator),
        roles=RoleCache(contracts.roles, settings.role_cache_s),
        domain=domain,
        clock=clock or WallClock(),
        announcer=announcer or MemoryAnnouncer(Topics(settings.mqtt_root)),
        operator=LocalSigner(operator, domain),
        scd=scd or (HttpScdReader(settings.scd_url) if settings.scd_url else None),
    )
    pods = dict(load_areas(settings.areas_file)) if settings.areas_file else {}
    pods.update(areas or {})
    set_areas(ctx, pods)
    return ctx
