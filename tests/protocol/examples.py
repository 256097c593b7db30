"""One valid, realistic instance of every signed message type, for protocol tests."""

from __future__ import annotations

from flexledger.messages import (
    Award,
    BaselineValue,
    BrpBaseline,
    ClearingProvenance,
    CustomerEntry,
    CustomerList,
    Decision,
    DerPlanning,
    DerStatus,
    Eligibility,
    MarketOutcome,
    MeasureHistory,
    MeasurementBatch,
    Offer,
    Order,
    PlanItem,
    QuarterlyMeasure,
    Request,
    ResourceInfo,
    ResourceKind,
    Sample,
    SensorReading,
    SessionAction,
    SessionCommand,
    SetPoint,
    SettlementOutcome,
    SignedMessage,
    TopologyEvent,
    Validation,
    WindowManifest,
    h32,
)
from flexledger.units import Direction
from node.keys import dev_account
from node.signing import commitment_root

DAY = 1_796_083_200  # 2026-11-29 00:00 UTC
POD = "IT001E00000001"
POD2 = "IT001E00000002"
AGG = dev_account("aggregator:1").address
DSO = dev_account("dso").address
OWNER = dev_account("owner:1").address
DEVICE = dev_account(f"ln:{POD}").address
H1 = "0x" + "11" * 32
H2 = "0x" + "22" * 32


def _resource() -> ResourceInfo:
    return ResourceInfo(
        resource_id="bat-1",
        kind=ResourceKind.BATTERY,
        p_max_w=5000,
        e_max_wh=10000,
        available_from_s=DAY,
        available_to_s=DAY + 86_400,
    )


def _awards() -> list[Award]:
    return [
        Award(
            session_id="DA-2026-11-29",
            offer_hash=H1,
            request_hash=H2,
            mtu_start_s=DAY + 900 * k,
            power_w=3000 + k,
            price_cents_per_mwh=12_000,
            pod=POD,
            direction=Direction.UP,
            stage="dso",
            share_of_request=0.5,
        )
        for k in range(3)
    ]


def examples() -> list[SignedMessage]:
    samples = [
        Sample(t_s=DAY + 4 * i, p_w=1500 - i, q_var=200, v_mv=231_000, seq=i) for i in range(5)
    ]
    baseline_values = [
        BaselineValue(pod=p, mtu_start_s=DAY + 900 * k, e_wh=400 + k)
        for p in (POD, POD2)
        for k in range(4)
    ]
    baseline_root = commitment_root(
        [v.leaf() for v in sorted(baseline_values, key=lambda v: (v.pod, v.mtu_start_s))]
    )
    decisions = [
        Decision(
            award_hash=a.award_hash,
            approved=i != 1,
            reason=None if i != 1 else "overvoltage bus:12",
        )
        for i, a in enumerate(_awards())
    ]
    awards = _awards()
    return [
        Offer(
            session_id="DA-2026-11-29",
            aggregator=AGG,
            pod=POD,
            direction=Direction.UP,
            mtu_start_s=DAY + 900 * 40,
            mtu_count=8,
            max_w=20_000,
            min_w=5_000,
            price_cents_per_mwh=15_000,
            valid_until_s=DAY,
            nonce=7,
        ),
        Request(
            session_id="DA-2026-11-29",
            requester=DSO,
            direction=Direction.DOWN,
            mtu_start_s=DAY + 900 * 48,
            mtu_count=4,
            volume_w=50_000,
            max_price_cents_per_mwh=30_000,
            eligible=[
                Eligibility(pod=POD, factor_ppm=1_000_000),
                Eligibility(pod=POD2, factor_ppm=420_000),
            ],
            valid_until_s=DAY,
            nonce=1,
        ),
        Validation(
            session_id="DA-2026-11-29",
            round=1,
            awards_root=h32(commitment_root([a.leaf() for a in awards])),
            decisions=decisions,
            decisions_root=h32(commitment_root([d.leaf() for d in decisions])),
            nonce=3,
        ),
        MarketOutcome(
            session_id="DA-2026-11-29",
            round=1,
            final=True,
            awards=awards,
            awards_root=h32(commitment_root([a.leaf() for a in awards])),
            total_cost_cents=123,
            provenance=ClearingProvenance(name="dso-first", version="1", solver="HIGHS"),
        ),
        Order(
            session_id="DA-2026-11-29",
            offer_hash=H1,
            request_hash=H2,
            mtu_start_s=DAY + 900 * 48,
            mtu_count=2,
            power_w=3000,
            nonce=9,
            expiry_s=DAY + 900 * 48,
        ),
        SetPoint(
            order_hash=H1,
            pod=POD,
            direction=Direction.UP,
            mtu_start_s=DAY + 900 * 48,
            mtu_count=2,
            power_w=3000,
            seq=4,
            expiry_s=DAY + 900 * 50,
        ),
        MeasurementBatch(pod=POD, samples=samples),
        WindowManifest(
            pod=POD,
            window_start_s=DAY,
            root=H1,
            sample_count=225,
            first_seq=0,
            last_seq=224,
            setpoints_hash="0x" + "00" * 32,
        ),
        BrpBaseline(brp=DSO, day_s=DAY, values=baseline_values, root=h32(baseline_root), nonce=1),
        CustomerList(
            aggregator=AGG,
            day_s=DAY,
            customers=[
                CustomerEntry(pod=POD, fr_owner=OWNER, device=DEVICE, resources=[_resource()])
            ],
            nonce=2,
        ),
        DerStatus(
            fr_owner=OWNER, aggregator=AGG, pod=POD, day_s=DAY, resources=[_resource()], nonce=1
        ),
        DerPlanning(
            aggregator=AGG,
            fr_owner=OWNER,
            pod=POD,
            items=[
                PlanItem(
                    offer_hash=H1,
                    direction=Direction.UP,
                    mtu_start_s=DAY,
                    mtu_count=4,
                    power_w=2500,
                )
            ],
            nonce=5,
        ),
        SettlementOutcome(
            session_id="DA-2026-11-29",
            award_hash=H1,
            offer_hash=H2,
            pod=POD,
            mtu_start_s=DAY,
            awarded_wh=750,
            baseline_wh=1200,
            measured_wh=500,
            delivered_wh=700,
            amount_cents=84,
            claim_cents=0,
            windows_s=[DAY],
            measurement_root=H1,
            baseline_root=H2,
            status="partially_paid",
        ),
        SensorReading(
            sensor_id="vc:bus12", t_s=DAY, v_mv=10_412_000, p_w=-20_000, q_var=100, i_ma=1200, seq=1
        ),
        TopologyEvent(element="line:40", closed=False, t_s=DAY + 3600, seq=1),
        SessionCommand(
            session_id="DA-2026-11-29",
            action=SessionAction.CLOSE_GATE,
            delivery_start_s=DAY,
            nonce=1,
            expiry_s=DAY,
        ),
        MeasureHistory(
            uploader=DSO,
            values=[
                QuarterlyMeasure(pod=POD, mtu_start_s=DAY - 900 * k, e_wh=300 + k, source="history")
                for k in range(1, 4)
            ],
            nonce=1,
        ),
    ]
