"""The whole market day of ``scenarios/small.toml`` (ten PODs) on the embedded default, run
once for the test session and shared by ``test_market_day.py`` (the day's figures) and
``test_dashboard.py`` (the operator dashboard in a real browser): every actor as a service on
loopback, a real devnet, broker and SQLite, one Light Node per POD on the world's meters.

The dashboard is up before the day starts and a headless Chromium (Debian's ``chromium`` and
``chromium-driver``, ``make setup-test``) watches it while the day runs, recording the
server-sent events its page receives; after the day, still inside the stack, it loads every
view, checks a sample's Merkle proof against the chain and saves screenshots under the run's
``report/`` (linked from ``index.html``). The assertions read what the run left."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SMALL = Path(__file__).resolve().parents[2] / "scenarios" / "small.toml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: The flags that work in this container (no GPU, no sandbox, nothing phoning home).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1366,900",
]
VIEWS = ["grid", "market", "activation", "ledger", "settlement"]


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
    summary: dict[str, Any] = field(default_factory=dict)
    dashboard: dict[str, Any] = field(default_factory=dict)


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


class Browser:
    """One headless Chromium page driven by Selenium, its console kept (``goog:loggingPrefs``)."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="flex-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(120)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def load(self, url: str) -> dict[str, Any]:
        """Open ``url``; what it shows: its ``data-fig`` figures, error, console entries."""
        t0 = time.perf_counter()
        self.driver.get(url)
        self.driver.execute_script("return document.readyState")
        time.sleep(0.5)  # the page's script connects its event stream
        return {
            "url": url,
            "load_s": round(time.perf_counter() - t0, 2),
            "figs": self.driver.execute_script(
                "const o = {}; for (const e of document.querySelectorAll('[data-fig]'))"
                " { o[e.dataset.fig] = e.dataset.cents || e.textContent.trim(); } return o;"
            ),
            "error": self.driver.execute_script(
                "const e = document.querySelector('[data-error]');"
                " return e ? e.textContent.trim() : null;"
            ),
            "title": self.driver.title,
            "console": self.console(),
        }

    def console(self) -> list[dict[str, Any]]:
        return list(self.driver.get_log("browser"))

    def screenshot(self, path: Path) -> None:
        """The whole page (up to 6000 px high) as a PNG."""
        height = int(self.driver.execute_script("return document.body.scrollHeight"))
        self.driver.set_window_size(1366, min(max(height, 900), 6000))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1366, 900)

    def check_proof(self, pod: str, t_s: int, change_w: int = 0) -> dict[str, Any]:
        """On the ledger view: fetch the SCD's proof of a sample and verify it on chain from
        the page (``change_w``: first change the sample's P by that much)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select, WebDriverWait

        d = self.driver
        Select(d.find_element(By.NAME, "pod")).select_by_visible_text(pod)
        t = d.find_element(By.NAME, "t_s")
        t.clear()
        t.send_keys(str(t_s))
        d.find_element(By.ID, "proof-fetch").click()
        WebDriverWait(d, 30).until(
            lambda d: (
                d.find_element(By.ID, "proof-body").is_displayed()
                or d.find_element(By.ID, "proof-error").text
            )
        )
        error = d.find_element(By.ID, "proof-error").text
        if error:
            return {"error": error}
        p = d.find_element(By.ID, "ps-p")
        p_w = int(p.get_attribute("value") or 0)
        if change_w:
            p.clear()
            p.send_keys(str(p_w + change_w))
        d.find_element(By.ID, "proof-verify").click()
        verdict = d.find_element(By.ID, "proof-verdict")
        WebDriverWait(d, 30).until(lambda d: verdict.text not in ("", "asking the chain…"))
        return {
            "verdict": verdict.text,
            "leaf": verdict.get_attribute("data-leaf"),
            "p_w": p_w + change_w,
            "proof": d.find_element(By.ID, "proof-json").text,
        }


def _browse(browser: Browser, url: str, sessions: list[str], pod: str, t_s: int,
            out: Path) -> dict[str, Any]:  # fmt: skip
    """After the day, every view and every session's market page; the proof check; the
    screenshots (``out/dashboard-<view>.png``)."""
    seen: dict[str, Any] = {}
    for view in VIEWS:
        seen[view] = browser.load(f"{url}/{view}")
        t0 = time.perf_counter()
        browser.screenshot(out / f"dashboard-{view}.png")
        seen[view]["screenshot"] = f"dashboard-{view}.png"
        seen[view]["screenshot_s"] = round(time.perf_counter() - t0, 2)
    for sid in sessions:
        seen[f"market?session={sid}"] = browser.load(f"{url}/market?session={sid}")
    seen["missing-session"] = browser.load(f"{url}/market?session=NO-SUCH-SESSION")
    ledger = browser.load(f"{url}/ledger")
    real = browser.check_proof(pod, t_s)
    browser.screenshot(out / "dashboard-ledger-proof.png")
    changed = browser.check_proof(pod, t_s, change_w=1)
    return {
        "views": seen,
        "proof": {
            "real": real,
            "changed": changed,
            "console": ledger["console"] + browser.console(),
        },
    }


@pytest.fixture(scope="session")
async def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    """The small day, once per test session (see the module docstring)."""
    from sqlalchemy import create_engine

    from audit import audit_measurements
    from flexledger.cli.demo import _offers
    from flexledger.report import write_report
    from flexledger.stack.audits import record_day_audits
    from flexledger.stack.day import run_day
    from flexledger.stack.services import EmbeddedStack
    from flexledger.transport import SyncSignedHttpClient
    from scd.db import samples

    home = tmp_path_factory.mktemp("flexhome")
    report = home / "report"
    browser: Browser | None = None
    dashboard: dict[str, Any] = {}
    t0 = time.perf_counter()
    async with EmbeddedStack(SMALL, home) as stack:
        try:
            url = await stack.start_dashboard()
            dashboard["url"] = url
            if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
                browser = await asyncio.to_thread(Browser)
                # a user who opens the dashboard before the day starts and watches
                dashboard["watch"] = await asyncio.to_thread(browser.load, f"{url}/market")
            else:
                dashboard["skip"] = f"no {CHROMIUM} / {CHROMEDRIVER}: run 'make setup-test'"
            setup_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            result = await run_day(stack)
            day_s = time.perf_counter() - t1
            dashboard["day_end_ms"] = time.time() * 1000
            record_day_audits(stack.audit_store, result)
            record = stack.dso.days[stack.day_s]
            d = Day(result, stack.scenario, record.assessment, list(record.requests))
            d.seen_real_time = {
                (v.kind, v.element)
                for rt in stack.dso.realtime.values()
                if rt.assessment is not None
                for v in rt.assessment.before
            }
            d.effect = await asyncio.to_thread(_effect, stack, result)
            report.mkdir(parents=True, exist_ok=True)
            pod = stack.world.pod_codes[0]
            t = stack.day_s + 48 * 900
            t2 = time.perf_counter()
            if browser is not None:
                dashboard["events"] = await asyncio.to_thread(
                    browser.driver.execute_script, "return window.__flexEvents || []"
                )
                dashboard["watch_console"] = await asyncio.to_thread(browser.console)
                # a real sample (not the one tampered with below), checked from the browser
                dashboard.update(
                    await asyncio.to_thread(
                        _browse,
                        browser,
                        url,
                        [s.session_id for s in result.sessions],
                        stack.world.pod_codes[1],
                        stack.day_s + 30 * 900 + 8,
                        report,
                    )
                )
            dashboard["timings_s"] = {
                "setup": round(setup_s, 1),
                "day": round(day_s, 1),
                "browser_after_the_day": round(time.perf_counter() - t2, 1),
            }
            offers = await _offers(stack)
            d.summary = write_report(result, report, offers=offers, total_s=day_s, setup_s=setup_s)
            d.dashboard = dashboard
            # tamper with one stored sample in the SCD's database: the auditor must see it
            scd_db = create_engine(stack.scd_db_url)
            with scd_db.begin() as conn:
                conn.execute(
                    samples.update()
                    .where(samples.c.pod == pod, samples.c.t_s == t + 40)
                    .values(p_w=samples.c.p_w + 1)
                )
            scd_db.dispose()
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
        finally:
            if browser is not None:
                await asyncio.to_thread(browser.close)
    d.home = home
    return d
