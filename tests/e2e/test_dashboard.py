"""The operator dashboard of the small day in a real browser (headless Chromium, Selenium): the
page opened before the day received live updates while it ran; after the day every view loads
without a console error and shows the numbers of ``summary.json``; the in-browser proof check
(``eth_call`` to the chain) says valid for a real sample and invalid for a changed one; the
screenshots are linked from the report. What the browser saw is recorded by the session
fixture ``day`` (``conftest.py``) while the stack is up."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import SMALL, VIEWS, Day

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not SMALL.is_file(), reason="scenarios/small.toml not there"),
]


@pytest.fixture(scope="module")
def seen(day: Day) -> dict[str, Any]:
    if "skip" in day.dashboard:
        pytest.fail(day.dashboard["skip"])
    return day.dashboard


def _severe(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("level") == "SEVERE"]


def test_every_view_loads_without_a_console_error(seen: dict[str, Any]) -> None:
    print("timings (s):", seen["timings_s"])
    print({k: (v.get("load_s"), v.get("screenshot_s")) for k, v in seen["views"].items()})
    pages = {k: v for k, v in seen["views"].items() if k != "missing-session"}
    assert set(VIEWS) <= set(pages) and any(k.startswith("market?session=") for k in pages)
    for name, page in pages.items():
        assert page["error"] is None, (name, page["error"])
        assert page["title"].startswith("flexledger"), (name, page["title"])
        assert page["figs"], f"{name} shows no figures"
        assert not _severe(page["console"]), (name, page["console"])
    assert not _severe(seen["watch_console"]), seen["watch_console"]
    assert not _severe(seen["proof"]["console"]), seen["proof"]["console"]


def test_a_missing_session_is_a_clear_error(seen: dict[str, Any]) -> None:
    page = seen["views"]["missing-session"]
    assert page["error"] and "no session 'NO-SUCH-SESSION'" in page["error"], page


def test_a_live_update_arrived_while_the_day_ran(seen: dict[str, Any]) -> None:
    """The page opened before the day (waiting for the first session) got server-sent events
    as the day went on: sessions changing state, orders and samples counting up."""
    events = seen["events"]
    before_end = [e for e in events if e["kind"] == "update" and e["at"] < seen["day_end_ms"]]
    assert len(before_end) >= 3, events[:5]
    states = [e["snapshot"].get("sessions", {}).get("DA") for e in before_end]
    assert any(s and s.startswith("final") for s in states), states
    assert any("orders" in e["changed"] for e in before_end)
    samples = [e["snapshot"]["samples"] for e in before_end if "samples" in e["snapshot"]]
    assert samples and max(samples) > min(samples), samples
    assert seen["watch"]["error"] is None and "market" in seen["watch"]["url"]


def _fig(page: dict[str, Any], key: str, default: str = "0") -> str:
    return str(page["figs"].get(key, default))


def test_the_views_show_the_summary_figures(day: Day, seen: dict[str, Any]) -> None:
    s = day.summary
    views = seen["views"]
    grid = views["grid"]
    v = s["violations_day_ahead"]
    assert _fig(grid, "violations.before") == str(v["before_remedies"])
    assert _fig(grid, "violations.after") == str(v["after_remedies"])
    assert _fig(grid, "needs") == str(v["needs"])
    assert int(_fig(grid, "measured_mtus")) == 96
    for sess in s["sessions"]:
        sid = sess["session"]
        market = views[f"market?session={sid}"]
        assert _fig(market, f"{sid}.state") == "final", sid
        for key in ("awards", "requests", "dso_requests", "rounds", "awarded_w_mtu"):
            assert _fig(market, f"{sid}.{key}") == str(sess[key]), (sid, key, market["figs"])
        assert _fig(views["activation"], f"{sid}.orders") == str(sess["orders"]), sid
        settle = views["settlement"]
        for key in ("settled_awards", "paid_cents", "delivered_wh", "awarded_wh"):
            assert _fig(settle, f"{sid}.{key}") == str(sess[key]), (sid, key, settle["figs"])
    ledger = views["ledger"]
    for status, n in s["windows"].items():
        assert _fig(ledger, f"windows.{status}") == str(n), (status, ledger["figs"])
    settle = views["settlement"]
    for payer, cents in s["payments_cents"].items():
        assert _fig(settle, f"payments.{payer}") == str(cents), (payer, settle["figs"])
    for agg, cents in s["owner_payouts_cents"].items():
        assert _fig(settle, f"payouts.{agg}") == str(cents), (agg, settle["figs"])
    for audit in ("measurements", "market", "settlement"):
        want = "pass" if s["audits"][audit] else "fail"
        assert _fig(settle, f"audit.{audit}", "") == want, (audit, settle["figs"])


def test_the_browser_checks_a_sample_against_the_chain(seen: dict[str, Any]) -> None:
    real, changed = seen["proof"]["real"], seen["proof"]["changed"]
    assert "error" not in real, real
    assert real["verdict"] == "valid", real
    assert '"batch"' in real["proof"] and "window_proof" in real["proof"]  # verifyBatched
    assert changed["verdict"] == "invalid", changed
    assert changed["leaf"] != real["leaf"] and changed["p_w"] == real["p_w"] + 1


def test_the_report_links_the_screenshots(day: Day, seen: dict[str, Any]) -> None:
    assert day.home is not None
    report = day.home / "report"
    page = (report / "index.html").read_text("utf-8")
    for view in VIEWS:
        shot = report / f"dashboard-{view}.png"
        assert shot.is_file() and shot.stat().st_size > 10_000, shot
        assert f"href='dashboard-{view}.png'" in page
    assert (report / "dashboard-ledger-proof.png").is_file()
