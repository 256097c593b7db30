"""The dashboard app without the day: auth and role scoping, a clear error (never a 500) for
every route when a service is down or a thing does not exist, the live feed's scoping, and
the server-drawn charts. The views' figures against a real day: tests/e2e/test_dashboard.py."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from audit.app import AuditStore
from audit.app import create_app as create_audit_app
from flexledger.dashboard import ROLE_VIEWS, DashboardAuth, DashboardConfig, create_app, svg
from flexledger.dashboard.live import Live
from flexledger.dashboard.views import direction

VIEWS = ["grid", "market", "activation", "ledger", "settlement"]


def _closed_port_url() -> str:
    """A loopback URL where nothing listens: a service that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def down_config() -> DashboardConfig:
    down = _closed_port_url()
    return DashboardConfig(
        market_url=down,
        scd_url=down,
        rpc_url=down,
        dso_url=down,
        aggregator_urls={"aggregator:1": down},
        audit_url=down,
        anchor_address="0x" + "11" * 20,
    )


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://dashboard",
        follow_redirects=False,
    )


AUTH = DashboardAuth.parse("op-token-1234=operator,tso-token-1234=tso:Terna,aud-token-1234=auditor")


async def test_no_login_by_default_and_a_clear_error_when_services_are_down(
    down_config: DashboardConfig,
) -> None:
    async with _client(create_app(down_config, live=False)) as c:
        assert (await c.get("/health")).json()["auth"] is False
        assert (await c.get("/")).headers["location"] == "/grid"
        for view in VIEWS:
            r = await c.get(f"/{view}")
            assert r.status_code == 502, (view, r.status_code)
            assert "does not answer" in r.text and "market" in r.text
            assert 'data-error="market"' in r.text
        r = await c.get("/api/proof", params={"pod": "IT001E00000001", "t_s": 1800})
        assert r.status_code == 502 and r.json()["error"]["code"] == "scd"
        bad = await c.get("/api/proof", params={"pod": "IT001E00000001", "t_s": -4})
        assert bad.status_code == 422


async def test_a_missing_session_or_pod_is_a_404_page_not_a_500(tmp_path: Path) -> None:
    """A real auditor service answers; the market is down: the settlement view says which."""
    import threading
    import time

    import uvicorn

    store = AuditStore(tmp_path / "audits.json")
    store.record("market", True, scope="sessions DA", figures={"sessions": 1})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_audit_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        down = _closed_port_url()
        config = DashboardConfig(
            market_url=down, scd_url=down, rpc_url=down, audit_url=f"http://127.0.0.1:{port}"
        )
        async with _client(create_app(config, live=False)) as c:
            r = await c.get("/market", params={"session": "NOPE"})
            assert r.status_code == 502 and "market" in r.text
            r = await c.get("/settlement")
            assert r.status_code == 502
        from flexledger.dashboard import Sources

        src = Sources(config)
        try:
            audits = await src.get("audit", "/audits")
        finally:
            await src.aclose()
        assert [a["status"] for a in audits["audits"]] == ["not_run", "pass", "not_run"]
    finally:
        server.should_exit = True
        thread.join(10)


async def test_auth_refuses_without_a_valid_token(down_config: DashboardConfig) -> None:
    async with _client(create_app(down_config, auth=AUTH, live=False)) as c:
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/static/dashboard.js")).status_code == 200
        for path in ["/", *(f"/{v}" for v in VIEWS), "/events", "/api/proof?pod=x&t_s=0"]:
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthorized"
        bad = await c.get("/market", headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401
        ok = await c.get("/market", headers={"Authorization": "Bearer op-token-1234"})
        assert ok.status_code == 502  # let in; the market is down


async def test_roles_see_only_their_views(down_config: DashboardConfig) -> None:
    async with _client(create_app(down_config, auth=AUTH, live=False)) as c:
        tso = {"Authorization": "Bearer tso-token-1234"}
        for view in VIEWS:
            r = await c.get(f"/{view}", headers=tso)
            if view in ROLE_VIEWS["tso"]:
                assert r.status_code == 502, view  # let in, the data is missing
                nav = r.text.split("<nav>")[1].split("</nav>")[0]
                assert 'href="/grid"' not in nav and 'href="/ledger"' not in nav
                assert 'href="/market"' in nav
            else:
                assert r.status_code == 403, view
                assert "may not see" in r.text
        r = await c.get("/api/proof", params={"pod": "x", "t_s": 0}, headers=tso)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert (await c.get("/", headers=tso)).headers["location"] == "/market"
        aud = {"Authorization": "Bearer aud-token-1234"}
        assert (await c.get("/grid", headers=aud)).status_code == 403
        assert (await c.get("/ledger", headers=aud)).status_code == 502


async def test_a_token_in_the_url_is_kept_in_a_cookie(down_config: DashboardConfig) -> None:
    async with _client(create_app(down_config, auth=AUTH, live=False)) as c:
        r = await c.get("/", params={"token": "tso-token-1234"})
        assert r.status_code == 303 and "flex_dashboard_token" in r.headers["set-cookie"]
        assert "httponly" in r.headers["set-cookie"].lower()
        # the client keeps the cookie: the next request needs no token
        assert (await c.get("/market")).status_code == 502
        assert (await c.get("/grid")).status_code == 403


def test_auth_file_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps({"tokens": [{"token": "s3cret-dso-token", "role": "dso", "name": "e-distrib"}]})
    )
    auth = DashboardAuth.parse(str(path))
    who = auth.principal("s3cret-dso-token")
    assert who is not None and who.role == "dso" and who.name == "e-distrib" and who.may("grid")
    assert auth.principal("other") is None and auth.principal(None) is None
    with pytest.raises(ValueError, match="unknown role"):
        DashboardAuth.parse("abcdefgh12=admin")
    with pytest.raises(ValueError, match="8 characters"):
        DashboardAuth.parse("short=dso")
    with pytest.raises(ValueError, match="neither a file"):
        DashboardAuth.parse("/no/such/file")


def test_live_events_are_scoped_to_the_role() -> None:
    event = {
        "seq": 3,
        "changed": ["orders", "messages", "audits"],
        "snapshot": {"at_s": 1, "orders": 4, "messages": 90, "audits": {"market": "pass"}},
    }
    tso = Live.scoped(event, ROLE_VIEWS["tso"])
    assert tso is not None
    assert set(tso["snapshot"]) == {"at_s", "orders", "audits"}  # no ledger for the TSO
    assert "ledger" not in tso["views"] and "settlement" in tso["views"]
    settlement_only = Live.scoped(event, frozenset({"settlement"}))
    assert settlement_only is not None and settlement_only["changed"] == ["audits"]
    assert Live.scoped({**event, "changed": ["messages"]}, ROLE_VIEWS["tso"]) is None


async def test_the_live_feed_reports_a_down_service(down_config: DashboardConfig) -> None:
    from flexledger.dashboard import Sources
    from flexledger.dashboard.views import live_snapshot

    src = Sources(down_config)
    try:
        snap = await live_snapshot(src)
    finally:
        await src.aclose()
    assert "does not answer" in snap["market_error"] and "does not answer" in snap["scd_error"]


def test_heatmap_marks_violations_and_is_valid_svg() -> None:
    vm: list[list[float | None]] = [[1.0, 1.06, None], [0.94, 1.0, 1.01]]
    out = svg.heatmap(vm, ["bus 1", "bus 2", "bus 3"], lo=0.95, hi=1.05, marks={(0, 1), (1, 0)})
    root = ET.fromstring(out)
    viol = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "viol"]
    viol += [r for r in root.iter("rect") if r.get("class") == "viol"]
    assert len(viol) == 2
    assert svg.vm_colour(1.05, 0.95, 1.05) == "#ff3737"
    assert svg.vm_colour(0.95, 0.95, 1.05) == "#3737ff"
    ET.fromstring(svg.bars([("a", "#000", [1.0, -2.0], "bar")], title="t", unit="W"))
    ET.fromstring(svg.merit_order([(10.0, 5.0, True), (5.0, 2.0, False)], title="m"))


def test_direction_reads_every_serialisation() -> None:
    assert direction(0) == "up" and direction("1") == "down" and direction("Direction.UP") == "up"
    assert direction("down") == "down"


def test_the_commands_say_how_to_run_it() -> None:
    from typer.testing import CliRunner

    from flexledger.cli import app
    from flexledger.cli.dashboard import _aggregators

    runner = CliRunner()
    env = {"COLUMNS": "200"}
    out = runner.invoke(app, ["serve", "dashboard", "--help"], env=env).output
    for option in ("--market-url", "--scd-url", "--dso-url", "--aggregator-url", "--rpc-url",
                   "--mqtt-url", "--audit-url", "FLEX_DASHBOARD_AUTH"):  # fmt: skip
        assert option in out, option
    assert "--serve" in runner.invoke(app, ["demo", "--help"], env=env).output
    assert "GET /audits" in runner.invoke(app, ["serve", "audit", "--help"], env=env).output
    assert _aggregators(["aggregator:1=http://a:1,aggregator:2=http://b:2", "http://c:3"]) == {
        "aggregator:1": "http://a:1",
        "aggregator:2": "http://b:2",
        "aggregator:3": "http://c:3",
    }


async def test_the_event_stream_sends_changes_and_ends_with_the_feed(
    down_config: DashboardConfig,
) -> None:
    """The polling loop's first snapshot (the services are down: it says so) reaches an open
    stream as an update; stopping the feed ends the stream (the server can shut down)."""
    import asyncio

    from flexledger.dashboard import Sources

    src = Sources(down_config)
    feed = Live(src, poll_s=0.1)

    async def connected() -> bool:
        return False

    stream = feed.stream(ROLE_VIEWS["operator"], connected)
    assert (await anext(stream)).startswith("retry:")
    feed.start()
    try:
        event = await asyncio.wait_for(anext(stream), 10)
        assert event.startswith("event: update\ndata: ")
        data = json.loads(event.split("data: ", 1)[1])
        assert "market_error" in data["changed"] and data["seq"] == 1
    finally:
        await feed.stop()
        await src.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 5)
