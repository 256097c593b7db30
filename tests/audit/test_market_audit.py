"""The auditor passes an honest session and fails one whose market database was changed after
the commitments (awards, order book), fetching everything through the API only."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from audit.market import audit_market_session
from market import db
from market.app import create_app
from node.contracts import FlexContracts
from tests.market.helpers import AREAS, Market

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _failed(report: object) -> set[str]:
    return {f.check for f in report.failures()}  # type: ignore[attr-defined]


async def test_audit_honest_and_lying_market(contracts: FlexContracts, tmp_path: Path) -> None:
    m = Market(contracts, tmp_path)
    async with m.running():
        await m.run_day_ahead("DA-1", reject_first=True)
    app = create_app(m.settings(), contracts=contracts, clock=m.clock, areas=AREAS, scheduler=False)
    engine = app.state.ctx.engine
    http = TestClient(app)

    report = audit_market_session(http, contracts, "DA-1")
    assert report.ok, report.failures()
    assert len(report.findings) >= 12

    # the market lies about an award after committing it
    a = db.awards.c
    with engine.begin() as conn:
        final_round = conn.execute(select(db.sessions.c.round)).scalar_one()
        conn.execute(
            update(db.awards)
            .where(a.session_id == "DA-1", a.round == final_round, a.position == 0)
            .values(power_w=a.power_w + 1000)
        )
    failed = _failed(audit_market_session(http, contracts, "DA-1"))
    assert "awards hash to the committed awards root" in failed
    with engine.begin() as conn:
        conn.execute(
            update(db.awards)
            .where(a.session_id == "DA-1", a.round == final_round, a.position == 0)
            .values(power_w=a.power_w - 1000)
        )
    assert audit_market_session(http, contracts, "DA-1").ok

    # ... or about an offer of the committed order book
    o = db.offers.c
    with engine.begin() as conn:
        row = conn.execute(select(o.hash, o.envelope).order_by(o.hash)).first()
        assert row is not None
        h, envelope = row
        envelope["message"]["price_cents_per_mwh"] += 100
        conn.execute(update(db.offers).where(o.hash == h).values(envelope=envelope))
    failed = _failed(audit_market_session(http, contracts, "DA-1"))
    assert "order book hashes to the committed root" in failed
    assert "every offer and request signed by its party with its role" in failed
    http.close()
    engine.dispose()
