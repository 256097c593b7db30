"""``POST /availability`` (I-12): stored once, idempotent, and refused with a clear error —
bad signature 401, not this aggregator's FR owner or POD 403, malformed or unknown resources
422 naming the field, a day already over 422, a reused nonce 409 — storing nothing."""

from __future__ import annotations

from flexledger.messages import ResourceInfo, ResourceKind
from node.keys import dev_account
from tests.aggregator.conftest import Agg
from tests.market.helpers import DAY, POD1


def _stored(agg: Agg) -> int:
    return len(agg.client.get("/availability", params={"day_s": DAY}).json())


def test_availability_is_stored_once(agg: Agg) -> None:
    # the app granted the portfolio's owners their role on chain when it started
    roles = agg.contracts.roles
    assert roles.aggregator_of(dev_account("owner:1").address) == agg.service.address
    env = agg.status()
    r = agg.post(env)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "availability" and r.json()["count"] == 2
    again = agg.post(env)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    listed = agg.client.get("/availability", params={"day_s": DAY}).json()
    assert len(listed) == 1 and listed[0]["message"]["pod"] == POD1
    # a newer declaration of the same POD replaces it in what is listed
    newer = agg.status(
        resources=[
            ResourceInfo(
                resource_id="pv",
                kind=ResourceKind.PV,
                p_max_w=30_000,
                available_from_s=DAY,
                available_to_s=DAY + 86_400,
            )
        ]
    )
    assert agg.post(newer).status_code == 201
    listed = agg.client.get("/availability", params={"day_s": DAY}).json()
    assert [x["message"]["resources"][0]["p_max_w"] for x in listed] == [30_000]


def _code(r: object) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]  # type: ignore[attr-defined]


def test_refusals_store_nothing(agg: Agg) -> None:
    env = agg.status()
    # signature of someone else
    forged = env.model_copy(update={"signer": dev_account("owner:2").address})
    assert _code(agg.post(forged)) == (401, "bad_signature")
    # an owner this aggregator never granted (not in the portfolio)
    assert _code(agg.post(agg.status(owner="owner:9"))) == (403, "wrong_role")
    # another owner's POD
    assert _code(agg.post(agg.status(owner="owner:2", pod=POD1))) == (403, "wrong_role")
    # addressed to another aggregator
    other = agg.status(aggregator=dev_account("aggregator:2").address)
    assert _code(agg.post(other)) == (403, "wrong_role")
    # a resource the POD does not have, a kind that is not its kind, above its rating
    for resource, field in (
        ("heat", "resource_id"),
        ("bat-as-ev", "kind"),
        ("big", "p_max_w"),
    ):
        rid, kind, p = {
            "heat": ("hp", ResourceKind.HEAT_PUMP, 1000),
            "bat-as-ev": ("bat", ResourceKind.EV, 1000),
            "big": ("pv", ResourceKind.PV, 60_000),
        }[resource]
        r = agg.post(
            agg.status(
                resources=[
                    ResourceInfo(
                        resource_id=rid,
                        kind=kind,
                        p_max_w=p,
                        available_from_s=DAY,
                        available_to_s=DAY + 900,
                    )
                ]
            )
        )
        assert _code(r) == (422, "invalid"), r.text
        assert r.json()["error"]["details"]["field"] == f"message.resources.0.{field}"
    # malformed: a window that ends before it starts, a day that is not midnight
    body = env.model_dump(mode="json")
    body["message"]["resources"][0]["available_to_s"] = DAY
    body["message"]["resources"][0]["available_from_s"] = DAY + 900
    r = agg.post(body)
    assert _code(r) == (422, "invalid") and "resources.0" in r.json()["error"]["message"]
    body = env.model_dump(mode="json")
    body["message"]["day_s"] = DAY + 5
    assert _code(agg.post(body)) == (422, "invalid")
    # a day that is over
    old = agg.status(day_s=DAY - 2 * 86_400)
    assert _code(agg.post(old)) == (422, "expired")
    assert _stored(agg) == 0
    # a nonce reused for other content
    assert agg.post(agg.status(nonce=77)).status_code == 201
    assert _code(agg.post(agg.status(nonce=77, pod=POD1, day_s=DAY + 86_400))) == (409, "conflict")
    assert _stored(agg) == 1


def test_an_scd_that_does_not_answer_is_a_502(agg: Agg) -> None:
    assert agg.post(agg.status()).status_code == 201
    agg.service.scd.retries = 0
    r = agg.client.get(f"/flexibility/{DAY}")
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error", r.text
