"""``flexledger baseline report`` on a real SCD holding a hand-made history: high-4-of-5 is off
by +35 Wh in every MTU, meter-before/meter-after lags within the day and jumps at midnight,
the BRP has no baseline on those days. Every figure by hand."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from audit.baselines import baseline_report
from flexledger.cli import app
from flexledger.messages import MeasureHistory, QuarterlyMeasure
from flexledger.time import DAY_S, MTU_S
from flexledger.transport.http import SyncSignedHttpClient
from node.contracts import FlexContracts
from node.keys import dev_account
from node.signing import LocalSigner
from tests.market.helpers import DAY, POD1
from tests.market.settlement_helpers import ScdServer, mosquitto_or_skip

pytestmark = pytest.mark.timeout(60)


def _history(days: int = 20) -> list[QuarterlyMeasure]:
    """Day k before DAY: 1000 + 10·k + i Wh in MTU i (older days consume more)."""
    return [
        QuarterlyMeasure(
            pod=POD1,
            mtu_start_s=DAY - k * DAY_S + i * MTU_S,
            e_wh=1000 + 10 * k + i,
            sample_count=225,
            source="history",
        )
        for k in range(1, days + 1)
        for i in range(96)
    ]


def test_baseline_report(contracts: FlexContracts, tmp_path: Path) -> None:
    mosquitto_or_skip()
    with ScdServer(contracts, tmp_path) as scd:
        dso = LocalSigner(dev_account("dso"), contracts.roles.domain())
        env = dso.sign(MeasureHistory(uploader=dso.address, values=_history(), nonce=1))
        r = httpx.post(
            scd.url + "/measures/history",
            json=env.model_dump(mode="json", serialize_as_any=True),
            timeout=30,
        )
        assert r.status_code == 201, r.text
        with SyncSignedHttpClient(scd.url) as http:
            report = baseline_report(http, pods=[POD1], first_day_s=DAY - 3 * DAY_S, days=3)
        high = report.scores["high_4_of_5"]
        # evaluating day k: the 5 days before are k+1…k+5, the 4 highest k+2…k+5: mean
        # 1000 + 10(k + 3.5) + i, i.e. +35 Wh on every MTU
        assert high.n == 3 * 96 and high.sum_error_wh == 35 * high.n
        actual = sum(1000 + 10 * k + i for k in (1, 2, 3) for i in range(96))
        assert high.bias_pct == pytest.approx(100 * 35 * high.n / actual)
        assert high.cv_rmse_pct == pytest.approx(100 * 35 / (actual / high.n))
        mbma = report.scores["meter_before_after"]
        # hour h ≥ 1 of day k: the hour before averages c + 4h − 2.5 → c + 4h − 2 (half to
        # even, c = 1000 + 10k even), errors −2…−5 = −14; hour 0 follows the day before's
        # last hour, c + 103.5 → c + 104, errors 104…101 = +410: per day 410 − 23 × 14
        assert mbma.n == 3 * 96 and mbma.sum_error_wh == 3 * (410 - 23 * 14)
        assert report.scores["brp"].n == 0 and report.scores["brp"].bias_pct is None
        assert report.scores["high_5_of_10"].n == 3 * 96

        result = CliRunner().invoke(
            app,
            [
                "baseline",
                "report",
                "--first-day",
                "2026-11-28",
                "--days",
                "3",
                "--pod",
                POD1,
                "--method",
                "high_4_of_5",
                "--scd-url",
                scd.url,
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["methods"][0]["method"] == "high_4_of_5"
        assert out["methods"][0]["mean_error_wh"] == pytest.approx(35.0)
