"""The SCD's write routes: 201 once, 200 duplicate, 401 bad signature, 403 wrong role, 422
malformed naming the field, 409 conflict or uncommitted baseline — our error shape, nothing
stored on refusal — and the read routes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from flexledger.messages import (
    BaselineValue,
    BrpBaseline,
    CustomerEntry,
    CustomerList,
    DerStatus,
    MeasureHistory,
    QuarterlyMeasure,
    ResourceInfo,
    ResourceKind,
    SignedMessage,
    b32,
    h32,
)
from flexledger.transport import Topics
from flexledger.transport.mqtt import encode_payload
from node.signing import commitment_root
from scd.api import create_app
from scd.db import writes
from tests.scd.conftest import DAY, PODS, Chain, make_service, settings_for

_days = itertools.count(1)


@pytest.fixture
def api(chain: Chain, db: Any, tmp_path: Path) -> Iterator[TestClient]:
    service = make_service(chain, settings_for(db, tmp_path, Topics("unused/flex"), None))
    app = create_app(service=service, run_service=False)
    with TestClient(app) as client:
        yield client
    service.close()


@pytest.fixture
def day() -> int:
    """A delivery day of this test's own (baseline commitments are once per BRP and day)."""
    return DAY + 86_400 * next(_days)


def _resource(day: int) -> ResourceInfo:
    return ResourceInfo(
        resource_id="bat-1",
        kind=ResourceKind.BATTERY,
        p_max_w=5000,
        e_max_wh=10_000,
        available_from_s=day,
        available_to_s=day + 86_400,
    )


def _customers(chain: Chain, day: int, nonce: int = 1, bus: str = "bus:7") -> CustomerList:
    return CustomerList(
        aggregator=chain.aggregator.address,
        day_s=day,
        customers=[
            CustomerEntry(
                pod=pod,
                fr_owner=chain.owner.address,
                device=chain.devices[pod].address,
                resources=[_resource(day)],
                bus=bus,
            )
            for pod in PODS[:2]
        ],
        nonce=nonce,
    )


def _body(chain: Chain, signer: Any, message: SignedMessage) -> Any:
    import json

    return json.loads(encode_payload(chain.signer(signer).sign(message)))


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return dict(body["error"])


def test_customers_write_protocol(api: TestClient, chain: Chain, day: int) -> None:
    message = _customers(chain, day)
    body = _body(chain, chain.aggregator, message)

    # refused writes first: nothing may be stored by them
    tampered = {**body, "message": {**body["message"], "nonce": 99}}
    _error(api.post("/customers", json=tampered), 401, "bad_signature")
    outsider = _customers(chain, day).model_copy(update={"aggregator": chain.outsider.address})
    _error(api.post("/customers", json=_body(chain, chain.outsider, outsider)), 403, "wrong_role")
    # signed by a real aggregator, but for another one
    err = _error(
        api.post("/customers", json=_body(chain, chain.aggregator, outsider)), 403, "wrong_role"
    )
    assert "signed by" in err["message"]
    malformed = {**body, "message": {k: v for k, v in body["message"].items() if k != "day_s"}}
    err = _error(api.post("/customers", json=malformed), 422, "invalid")
    assert "body.message.day_s" in err["message"]
    assert api.get("/customers", params={"day_s": day}).json() == []

    first = api.post("/customers", json=body)
    assert first.status_code == 201, first.text
    receipt = first.json()
    assert receipt["kind"] == "customers" and receipt["count"] == 2 and not receipt["duplicate"]
    again = api.post("/customers", json=body)
    assert again.status_code == 200 and again.json() == {**receipt, "duplicate": True}
    other = _body(chain, chain.aggregator, _customers(chain, day, nonce=1, bus="bus:8"))
    _error(api.post("/customers", json=other), 409, "conflict")

    listed = api.get("/customers", params={"day_s": day}).json()
    assert [c["pod"] for c in listed] == PODS[:2] and {c["bus"] for c in listed} == {"bus:7"}
    pod = api.get(f"/pods/{PODS[0]}").json()
    assert pod["device_on_chain"] == chain.devices[PODS[0]].address
    assert pod["aggregator"] == chain.aggregator.address
    assert [p["pod"] for p in api.get("/pods").json()] == PODS[:2]
    _error(api.get("/pods/IT001E77777777"), 404, "not_found")


def test_availability_needs_the_fr_owner_of_that_aggregator(
    api: TestClient, chain: Chain, day: int
) -> None:
    status = DerStatus(
        fr_owner=chain.owner.address,
        aggregator=chain.aggregator.address,
        pod=PODS[0],
        day_s=day,
        resources=[_resource(day)],
        nonce=1,
    )
    wrong_agg = status.model_copy(update={"aggregator": chain.outsider.address})
    _error(api.post("/availability", json=_body(chain, chain.owner, wrong_agg)), 403, "wrong_role")
    not_owner = status.model_copy(update={"fr_owner": chain.outsider.address})
    _error(
        api.post("/availability", json=_body(chain, chain.outsider, not_owner)), 403, "wrong_role"
    )
    assert api.get("/availability", params={"day_s": day}).json() == []
    response = api.post("/availability", json=_body(chain, chain.owner, status))
    assert response.status_code == 201, response.text
    (stored,) = api.get("/availability", params={"day_s": day, "pod": PODS[0]}).json()
    assert stored["envelope"]["message"]["fr_owner"] == chain.owner.address


def _baseline(chain: Chain, day: int, e_wh: int = 400) -> BrpBaseline:
    values = [
        BaselineValue(pod=p, mtu_start_s=day + 900 * k, e_wh=e_wh + k)
        for p in PODS[:2]
        for k in range(4)
    ]
    root = commitment_root([v.leaf() for v in sorted(values, key=lambda v: (v.pod, v.mtu_start_s))])
    return BrpBaseline(brp=chain.brp.address, day_s=day, values=values, root=h32(root), nonce=day)


def test_baseline_refused_until_its_root_is_committed(
    api: TestClient, chain: Chain, day: int
) -> None:
    baseline = _baseline(chain, day)
    body = _body(chain, chain.brp, baseline)
    err = _error(api.post("/baselines", json=body), 409, "wrong_state")
    assert "committed" in err["message"]
    # a root committed, but another one
    other = _baseline(chain, day, e_wh=500)
    chain.c.baselines.commit_baseline(chain.brp, day, b32(other.root), 2)
    _error(api.post("/baselines", json=body), 409, "wrong_state")
    _error(api.get(f"/baselines/{day}"), 404, "not_found")
    # carried values that do not hash to the signed root: a bad signature
    lying = other.model_copy(update={"values": baseline.values})
    _error(api.post("/baselines", json=_body(chain, chain.brp, lying)), 401, "bad_signature")

    response = api.post("/baselines", json=_body(chain, chain.brp, other))
    assert response.status_code == 201, response.text
    (stored,) = api.get(f"/baselines/{day}", params={"brp": chain.brp.address}).json()
    assert stored["root"] == other.root and stored["committed_block"] > 0
    _error(api.post("/baselines", json=_body(chain, chain.outsider, other)), 403, "wrong_role")


def _history(chain: Chain, day: int, nonce: int, e_wh: int = 1000) -> MeasureHistory:
    return MeasureHistory(
        uploader=chain.dso.address,
        values=[
            QuarterlyMeasure(
                pod=PODS[0],
                mtu_start_s=day + 900 * k,
                e_wh=e_wh + k,
                sample_count=225,
                certified=True,
                source="history",
            )
            for k in range(96)
        ],
        nonce=nonce,
    )


def test_history_import_by_the_dso(api: TestClient, chain: Chain, day: int) -> None:
    history = _history(chain, day, nonce=1)
    _error(
        api.post(
            "/measures/history",
            json=_body(
                chain,
                chain.aggregator,
                history.model_copy(update={"uploader": chain.aggregator.address}),
            ),
        ),
        403,
        "wrong_role",
    )
    first = api.post("/measures/history", json=_body(chain, chain.dso, history))
    assert first.status_code == 201 and first.json()["count"] == 96
    assert api.post("/measures/history", json=_body(chain, chain.dso, history)).status_code == 200
    _error(
        api.post("/measures/history", json=_body(chain, chain.dso, _history(chain, day, 1, 7))),
        409,
        "conflict",
    )
    _error(
        api.post("/measures/history", json=_body(chain, chain.dso, _history(chain, day, 2, 7))),
        409,
        "conflict",
    )
    measures = api.get(
        "/measures/quarterly", params={"pod": PODS[0], "from_s": day, "to_s": day + 86_400}
    ).json()
    assert len(measures) == 96 and measures[5]["e_wh"] == 1005
    assert {m["source"] for m in measures} == {"history"}


def test_reads_and_docs(api: TestClient, chain: Chain) -> None:
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["chain_id"] == 31337 and health["block"] > 0
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/customers",
        "/pods",
        "/pods/{pod}",
        "/availability",
        "/baselines",
        "/baselines/{day_s}",
        "/measures/history",
        "/measures/quarterly",
        "/samples",
        "/windows",
        "/proof",
        "/stats/ingest",
    ):
        assert path in paths
    _error(api.get("/samples"), 422, "invalid")
    assert api.get("/stats/ingest").json()["accepted"] == 0


@pytest.mark.parametrize(
    "route, signer, field",
    [
        ("/customers", "aggregator", "nonce"),
        ("/availability", "owner", "pod"),
        ("/baselines", "brp", "root"),
        ("/measures/history", "dso", "uploader"),
    ],
)
def test_every_write_route_refuses_bad_signature_and_malformed(
    api: TestClient, chain: Chain, day: int, route: str, signer: str, field: str
) -> None:
    message: SignedMessage = {
        "/customers": lambda: _customers(chain, day),
        "/availability": lambda: DerStatus(
            fr_owner=chain.owner.address,
            aggregator=chain.aggregator.address,
            pod=PODS[0],
            day_s=day,
            resources=[_resource(day)],
            nonce=1,
        ),
        "/baselines": lambda: _baseline(chain, day),
        "/measures/history": lambda: _history(chain, day, nonce=1),
    }[route]()
    body = _body(chain, getattr(chain, signer), message)
    sig = body["signature"]
    forged = {**body, "signature": sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]}
    _error(api.post(route, json=forged), 401, "bad_signature")
    malformed = {**body, "message": {k: v for k, v in body["message"].items() if k != field}}
    err = _error(api.post(route, json=malformed), 422, "invalid")
    assert f"body.message.{field}" in err["message"]
    _error(api.post(route, json={**body, "signer": "0x1234"}), 422, "invalid")
    with api.app.state.scd.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(select(func.count()).select_from(writes)).scalar() == 0
