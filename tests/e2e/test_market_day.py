"""The whole market day of ``scenarios/small.toml`` (ten PODs) on the embedded default (the
session fixture ``day`` in ``conftest.py``: every actor as a service on loopback, a real devnet,
broker and SQLite, one Light Node per POD on the world's meters). The assertions read what the
run left."""

from __future__ import annotations

from typing import Any

import pytest

from flexledger.units import awarded_wh, payment_cents
from tests.e2e.checks import assert_dso_served_before_tso
from tests.e2e.conftest import SMALL, Day

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not SMALL.is_file(), reason="scenarios/small.toml not there"),
]


def test_the_stated_violations_are_found_day_ahead(day: Day) -> None:
    """The DSO's day-ahead assessment, on its forecast from the I-01 history (with its
    errors), finds at least three quarters of the stated violations."""
    seen = {(v.kind, v.element) for v in day.assessment.before}
    stated = {(e.kind, e.element) for e in day.scenario.expected}
    assert stated, "the scenario states its violations"
    missed = stated - seen
    print(f"day ahead: {len(stated - missed)} of {len(stated)} stated found; missed {missed}")
    assert len(missed) <= len(stated) // 4, f"the day-ahead forecast missed {sorted(missed)}"


def test_every_stated_violation_is_found(day: Day) -> None:
    """Day ahead or in real time. The supermarket's undervoltage at bus 465 is seen only in
    real time: the quarterly history (I-01) has no reactive energy, so the day-ahead model
    carries the air conditioning's P without its ~100 kvar; the real-time forecast takes each
    POD's tan φ from its last signed samples at the SCD (I-04)."""
    seen = {(v.kind, v.element) for v in day.assessment.before} | day.seen_real_time
    stated = {(e.kind, e.element) for e in day.scenario.expected}
    assert stated <= seen, f"never found: {sorted(stated - seen)}"


def test_requests_are_located_at_them(day: Day) -> None:
    located = {el for n in day.assessment.needs for el in n.elements}
    stated = {e.element for e in day.scenario.expected}
    assert located & stated, (located, stated)
    assert day.dso_requests, "the DSO asked the market"
    for env in day.dso_requests:
        r = env.message
        assert r.eligible and max(e.factor_ppm for e in r.eligible) == 1_000_000, r


def test_dso_served_before_tso(day: Day) -> None:
    assert_dso_served_before_tso(day.result.sessions)


def test_activation_reduces_the_targeted_violations(day: Day) -> None:
    assert day.effect, "some DSO flexibility was delivered at a violated bus"
    for e in day.effect:
        reduction = e["excess_without"] - e["excess_with"]
        assert reduction >= 0.5 * e["predicted_reduction"] - 1e-6, e


def test_settlement_pays_only_delivered_certified_flexibility(day: Day) -> None:
    paid = 0
    for s in day.result.sessions:
        for line in (s.settlement or {}).get("lines", []):
            o = line["outcome"]["message"]
            if o["amount_cents"] == 0:
                continue
            paid += 1
            assert o["status"] in ("paid", "partially_paid"), o
            assert o["delivered_wh"] > 0 and o["windows_s"], o
            cap = payment_cents(min(o["delivered_wh"], o["awarded_wh"]), _price(s, o))
            assert o["amount_cents"] <= cap, o
            assert o["awarded_wh"] <= awarded_wh(_power(s, o)), o
    assert paid > 0
    assert set(day.result.windows) == {"certified"}, day.result.windows


def test_all_three_audits_pass(day: Day) -> None:
    assert day.result.audit_measurements["ok"], day.result.audit_measurements.get("summary")
    for s in day.result.sessions:
        if s.audit_market is not None:
            assert s.audit_market["ok"], s.audit_market
        if s.audit_settlement is not None:
            assert s.audit_settlement["ok"], s.audit_settlement
    assert day.result.audits_ok


def test_a_changed_stored_sample_fails_the_measurement_audit(day: Day) -> None:
    assert day.tampered_audit_ok is False, day.tampered_window


def _award(s: Any, o: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in s.awards if a["award_hash"] == o["award_hash"])


def _price(s: Any, o: dict[str, Any]) -> int:
    return int(_award(s, o)["price_cents_per_mwh"])


def _power(s: Any, o: dict[str, Any]) -> int:
    return int(_award(s, o)["power_w"])


def test_read_commands_work_on_the_state_the_day_left(day: Day) -> None:
    """After the stack is gone: the chain restarts from its state file, the SCD is served from
    its SQLite file, and the participants' commands answer."""
    from typer.testing import CliRunner

    from flexledger.cli import app

    assert day.home is not None and day.tampered_window is not None
    runner = CliRunner()
    env = {"FLEX_RPC_URL": "", "COLUMNS": "200"}
    home = ["--home", str(day.home)]
    pod = day.result.sessions[0].awards[0]["pod"]
    t = day.result.day_s + 900
    balance = runner.invoke(app, [*home, "chain", "balance", "dev:aggregator:1"], env=env)
    assert balance.exit_code == 0 and "EUR" in balance.output, balance.output
    session = runner.invoke(app, [*home, "chain", "session", "DA"], env=env)
    assert session.exit_code == 0, session.output
    audit = runner.invoke(
        app,
        [*home, "audit", "measurements", "--pod", pod, "--from", str(t), "--to", str(t + 1800),
         "--scd-url", "http://127.0.0.1:9"],
        env=env,
    )  # fmt: skip
    assert audit.exit_code == 0 and "2 certified" in audit.output, audit.output
    # a window the concentrator anchored: found in its batch, the batch root checked on chain
    anchor = runner.invoke(
        app,
        [*home, "chain", "anchor", pod, str(t), "--scd-url", "http://127.0.0.1:9"],
        env=env,
    )
    assert anchor.exit_code == 0, anchor.output
    assert "the batch root on chain holds it" in anchor.output, anchor.output
    missing = runner.invoke(
        app, [*home, "chain", "anchor", pod, str(t + 86_400 * 3), "--scd-url", "http://127.0.0.1:9"],
        env=env,
    )  # fmt: skip
    assert missing.exit_code == 1 and "not anchored" in missing.output, missing.output
