"""The whole market day of ``scenarios/small.toml`` (ten PODs) on the embedded default, run
once for the module: every actor as a service on loopback, a real devnet, broker and SQLite,
one Light Node per POD on the world's meters. The assertions read what the run left."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flexledger.units import awarded_wh, payment_cents

SMALL = Path(__file__).resolve().parents[2] / "scenarios" / "small.toml"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not SMALL.is_file(), reason="scenarios/small.toml not there"),
]


@dataclass
class Day:
    result: Any
    scenario: Any
    assessment: Any
    dso_requests: list[Any]
    effect: list[dict[str, Any]] = field(default_factory=list)
    tampered_audit_ok: bool | None = None
    tampered_window: tuple[str, int] | None = None
    seen_real_time: set[tuple[str, str]] = field(default_factory=set)
    home: Path | None = None


def _effect(stack: Any, result: Any) -> list[dict[str, Any]]:
    """Per DSO voltage need with delivered flexibility: the excess at its critical bus in the
    MTUs of the need, re-assessed on the measured POD powers (the energy per MTU of the
    meters' 4 s samples, which the SCD certified) and on the same powers without the
    delivered energy, against what the request's effectiveness factors predict for the
    delivered kW (excess × effective kW / volume)."""
    from dso import assess
    from dso.forecast import GridForecast
    from flexledger.time import MTU_S

    dso = stack.dso
    record = dso.days[stack.day_s]
    fc = record.forecast
    starts = fc.mtu_start_s
    measured = {pod: stack.world.mtu_energy_wh(pod).astype(float) * 4 / 1000 for pod in fc.pod_p_kw}
    delivered_kw: dict[tuple[str, int], float] = {}
    for s in result.sessions:
        by_award = {a["award_hash"]: a for a in s.awards}
        for line in (s.settlement or {}).get("lines", []):
            o = line["outcome"]["message"]
            a = by_award.get(o["award_hash"])
            if a is None or a.get("stage") != "dso":
                continue
            sign = 1.0 if a["direction"] == "up" else -1.0
            key = (o["pod"], int(o["mtu_start_s"]))
            delivered_kw[key] = delivered_kw.get(key, 0.0) + sign * o["delivered_wh"] * 4 / 1000
    without = {pod: v.copy() for pod, v in measured.items()}
    for (pod, t), kw in delivered_kw.items():
        if pod in without:
            without[pod][(t - stack.day_s) // MTU_S] += kw  # up: it would have consumed more
    a_with = assess(dso.grid, GridForecast(starts, measured, fc.background, "day_ahead"))
    a_without = assess(dso.grid, GridForecast(starts, without, fc.background, "day_ahead"))
    hi, lo = a_with.limits["vm_max_pu"], a_with.limits["vm_min_pu"]
    out = []
    for need in record.assessment.needs:
        if not need.critical.startswith("bus:") or need.volume_kw <= 0:
            continue
        bus = int(need.critical.split(":")[1].split("@")[0])  # "bus:452@<MTU start>"
        col = int(np.flatnonzero(a_with.bus_index == bus)[0])
        for k in range(need.mtu_count):
            t = need.mtu_start_s + k * MTU_S
            m = (t - stack.day_s) // MTU_S
            eff_kw = sum(
                need.factors.get(pod, 0.0) * kw for (pod, tt), kw in delivered_kw.items() if tt == t
            )
            if eff_kw * (1 if need.direction == "up" else -1) <= 0:
                continue

            def excess(a: Any, m: int = m, col: int = col) -> float:
                v = float(a.vm_before_pu[m, col])
                return max(v - hi, lo - v, 0.0)

            before, after = excess(a_without), excess(a_with)
            predicted = min(before, need.worst_excess * abs(eff_kw) / need.volume_kw)
            out.append(
                {
                    "need": need.zone,
                    "mtu": m,
                    "effective_kw": eff_kw,
                    "excess_without": before,
                    "excess_with": after,
                    "predicted_reduction": predicted,
                }
            )
    return out


@pytest.fixture(scope="module")
async def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    from audit import audit_measurements
    from flexledger.stack.day import run_day
    from flexledger.stack.services import EmbeddedStack
    from flexledger.transport import SyncSignedHttpClient
    from scd.db import samples

    home = tmp_path_factory.mktemp("flexhome")
    async with EmbeddedStack(SMALL, home) as stack:
        result = await run_day(stack)
        record = stack.dso.days[stack.day_s]
        d = Day(result, stack.scenario, record.assessment, list(record.requests))
        d.seen_real_time = {
            (v.kind, v.element)
            for rt in stack.dso.realtime.values()
            if rt.assessment is not None
            for v in rt.assessment.before
        }
        d.effect = await asyncio.to_thread(_effect, stack, result)
        # tamper with one stored sample in the SCD's database: the auditor must see it
        pod = stack.world.pod_codes[0]
        t = stack.day_s + 48 * 900
        with stack.scd_service.engine.begin() as conn:
            conn.execute(
                samples.update()
                .where(samples.c.pod == pod, samples.c.t_s == t + 40)
                .values(p_w=samples.c.p_w + 1)
            )
        with SyncSignedHttpClient(stack.urls.scd, timeout_s=60) as scd:
            rep = await asyncio.to_thread(
                audit_measurements,
                scd,
                stack.contracts,
                pods=[pod],
                from_s=t,
                to_s=t + 900,
                from_block=stack.book.deploy_block,
            )
        d.tampered_audit_ok = rep.ok
        d.tampered_window = (pod, t)
    d.home = home
    return d


def test_the_stated_violations_are_found_day_ahead(day: Day) -> None:
    """The DSO's day-ahead assessment, on its forecast from the I-01 history (with its
    errors), finds at least three quarters of the stated violations."""
    seen = {(v.kind, v.element) for v in day.assessment.before}
    stated = {(e.kind, e.element) for e in day.scenario.expected}
    assert stated, "the scenario states its violations"
    missed = stated - seen
    print(f"day ahead: {len(stated - missed)} of {len(stated)} stated found; missed {missed}")
    assert len(missed) <= len(stated) // 4, f"the day-ahead forecast missed {sorted(missed)}"


@pytest.mark.xfail(
    strict=True,
    reason="the DSO's forecast misses the small day's evening undervoltage at bus 465 (the "
    "supermarket's air conditioning), day ahead and in real time: for the DSO's owner",
)
def test_every_stated_violation_is_found(day: Day) -> None:
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
    for s in day.result.sessions:
        if s.audit_market is None:
            continue
        checks = [f for f in s.audit_market.get("findings", []) if "TSO" in str(f)]
        assert checks, s.audit_market
        assert all(f.get("ok", True) for f in checks if isinstance(f, dict)), checks


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
