"""The whole market day of ``scenarios/small.toml`` in the distributed mode, run once for the
module: every actor its own process started from the CLI commands (``flexledger serve
scd|market|dso|aggregator``, ``flexledger sim serve``, ``flexledger concentrator run``, one
``flexledger lightnode run`` per POD), against the machine's PostgreSQL (a database of the run's
own, created in the ``test`` cluster and dropped after, a schema per service) and Mosquitto (a
topic root and client-id prefix of the run's own), and an anvil devnet of the test's own. The
driver reaches them only through their public APIs, MQTT and the chain.

The day is the real one (96 windows of 225 samples per POD, a real-time session every 4 hours),
not compressed: the scenario clock moves as fast as the actors let it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.checks import assert_dso_served_before_tso

SMALL = Path(__file__).resolve().parents[2] / "scenarios" / "small.toml"
PG_URL = os.environ.get("FLEX_TEST_PG_URL", "postgresql+psycopg://127.0.0.1:5432/test")
MQTT_URL = os.environ.get("FLEX_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def _reachable() -> str | None:
    import socket

    for name, port in (("PostgreSQL", 5432), ("Mosquitto", 1883)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return f"{name} is not listening on 127.0.0.1:{port}"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not SMALL.is_file(), reason="scenarios/small.toml not there"),
    pytest.mark.skipif(_reachable() is not None, reason=str(_reachable())),
]


@dataclass
class Run:
    result: Any
    pods: list[str]
    processes: dict[str, int]
    dso_requests: list[dict[str, Any]]
    da_request_stages: list[str]
    setpoint_leaves: int
    schemas: set[str]
    log_dir: Path


@pytest.fixture(scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from sqlalchemy import create_engine, text

    from flexledger.stack.day import run_day
    from flexledger.stack.distributed import DistributedStack

    home = tmp_path_factory.mktemp("flexdist")
    async with DistributedStack(
        SMALL,
        home,
        rpc_url="",
        db_url=PG_URL,
        mqtt_url=MQTT_URL,
        run_id=secrets.token_hex(4),
        drop_database=True,
    ) as stack:
        processes = {n: p.popen.pid for n, p in stack.processes.items() if p.popen is not None}
        result = await run_day(stack)
        processes |= {n: p.popen.pid for n, p in stack.processes.items() if p.popen is not None}
        assert all(p.alive() for p in stack.processes.values()), "a process died during the day"
        async with httpx.AsyncClient(timeout=60) as http:
            dso = (
                await http.get(
                    f"{stack.urls.dso}/requests", params={"day_s": stack.day_s, "kind": "day_ahead"}
                )
            ).json()
            market = (
                await http.get(f"{stack.urls.market}/requests", params={"session": "DA"})
            ).json()
            leaves = 0
            for pod in stack.world.pod_codes:
                windows = (
                    await http.get(
                        f"{stack.urls.scd}/windows",
                        params={"pod": pod, "from_s": stack.day_s, "to_s": stack.day_s + 86400},
                    )
                ).json()
                items = windows.get("items", windows) if isinstance(windows, dict) else windows
                leaves += sum(
                    len((w.get("manifest") or {}).get("message", {}).get("setpoint_leaves") or [])
                    for w in items
                )
        assert stack.db_url is not None
        engine = create_engine(stack.db_url)
        with engine.connect() as conn:
            schemas = set(
                conn.execute(text("select schema_name from information_schema.schemata")).scalars()
            )
        engine.dispose()
        stages = [r["stage"] for r in _items(market)]
        return Run(
            result,
            list(stack.world.pod_codes),
            processes,
            dso["requests"],
            stages,
            leaves,
            schemas,
            home / "logs",
        )


def _items(body: Any) -> list[dict[str, Any]]:
    return list(body.get("items", [])) if isinstance(body, dict) else list(body)


def test_each_actor_ran_in_its_own_process(run: Run) -> None:
    names = set(run.processes)
    assert {"sim", "scd", "market", "dso", "concentrator"} <= names, names
    assert {f"ln-{pod}" for pod in run.pods} <= names
    assert sum(n.startswith("aggregator") for n in names) == 2
    assert len(set(run.processes.values())) == len(run.processes), "one pid per actor"
    assert os.getpid() not in run.processes.values()
    for name in names:
        assert (run.log_dir / f"{name}.log").is_file(), name


def test_services_kept_their_tables_in_postgresql_schemas(run: Run) -> None:
    assert {"scd", "market", "aggregator_1", "aggregator_2"} <= run.schemas, run.schemas


def test_every_window_of_every_pod_is_certified(run: Run) -> None:
    assert run.result.windows == {"certified": 96 * len(run.pods)}, run.result.windows


def test_dso_requests_were_posted_and_served_before_tso(run: Run) -> None:
    assert run.dso_requests, "the DSO asked the market"
    assert run.da_request_stages.count("dso") == len(run.dso_requests), run.da_request_stages
    assert "tso" in run.da_request_stages, "the TSO simulator asked the market too"
    da = run.result.sessions[0]
    assert da.session_id == "DA" and da.awards, "the day-ahead session has awards"
    assert any(a.get("stage") == "dso" for a in da.awards)
    assert_dso_served_before_tso(run.result.sessions)


def test_orders_reached_the_light_nodes(run: Run) -> None:
    orders = sum(s.orders for s in run.result.sessions)
    assert orders > 0
    # each set-point a Light Node received is a leaf of its window's tree
    assert run.setpoint_leaves >= orders, (run.setpoint_leaves, orders)


def test_settlement_paid(run: Run) -> None:
    paid = [
        line["outcome"]["message"]
        for s in run.result.sessions
        for line in (s.settlement or {}).get("lines", [])
        if line["outcome"]["message"]["amount_cents"] > 0
    ]
    assert paid, "some delivered flexibility was paid"
    assert sum(run.result.payments_cents.values()) > 0
    assert sum(run.result.payouts_cents.values()) > 0, run.result.payouts_cents


def test_all_three_audits_pass(run: Run) -> None:
    assert run.result.audit_measurements["ok"], run.result.audit_measurements.get("summary")
    for s in run.result.sessions:
        if s.audit_market is not None:
            assert s.audit_market["ok"], s.audit_market
        if s.audit_settlement is not None:
            assert s.audit_settlement["ok"], s.audit_settlement
    assert run.result.audits_ok
