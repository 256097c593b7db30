"""Topic names: every builder parses back to what it was built from; anything else is refused
with an error that says what is wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexledger.transport import (
    DEFAULT_TOPICS,
    TopicError,
    TopicInfo,
    TopicKind,
    Topics,
    parse_topic,
    topic_matches,
)

POD = "IT001E00000001"
pods = st.from_regex(r"[A-Z]{2}[0-9A-Z]{4,30}", fullmatch=True)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}", fullmatch=True)
roots = st.lists(st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True), min_size=1, max_size=3).map(
    "/".join
)


def test_production_layout_is_the_architecture() -> None:
    t = DEFAULT_TOPICS
    assert t.pod_measure(POD) == f"flex/pod/{POD}/measure"
    assert t.pod_setpoint(POD) == f"flex/pod/{POD}/setpoint"
    assert t.pod_manifest(POD) == f"flex/pod/{POD}/manifest"
    assert t.pod_resend(POD) == f"flex/pod/{POD}/resend"
    assert t.grid_measure("vc-12") == "flex/grid/vc-12/measure"
    assert t.grid_topology() == "flex/grid/topology"
    assert t.market_session("da-2026-01-01") == "flex/market/da-2026-01-01"
    assert t.market_orders() == "flex/market/orders"
    assert t.meter_request(POD) == f"flex/sim/meter/{POD}/req"
    assert t.meter_response(POD) == f"flex/sim/meter/{POD}/resp"
    assert t.bms_setpoint(POD) == f"flex/sim/bms/{POD}"
    assert t.bms_ack(POD) == f"flex/sim/bms/{POD}/ack"
    assert t.clock_now() == "flex/clock/now"
    assert t.clock_register("ln-1") == "flex/clock/register/ln-1"
    assert t.clock_done("ln-1") == "flex/clock/done/ln-1"
    assert t.all_pod_measures() == "flex/pod/+/measure"
    assert t.all_grid_measures() == "flex/grid/+/measure"


@given(root=roots, pod=pods, name=names)
def test_every_topic_round_trips(root: str, pod: str, name: str) -> None:
    t = Topics(root)
    cases = {
        t.pod_measure(pod): TopicInfo(TopicKind.POD_MEASURE, pod=pod),
        t.pod_setpoint(pod): TopicInfo(TopicKind.POD_SETPOINT, pod=pod),
        t.pod_manifest(pod): TopicInfo(TopicKind.POD_MANIFEST, pod=pod),
        t.pod_resend(pod): TopicInfo(TopicKind.POD_RESEND, pod=pod),
        t.grid_measure(name): TopicInfo(TopicKind.GRID_MEASURE, sensor=name),
        t.grid_topology(): TopicInfo(TopicKind.GRID_TOPOLOGY),
        t.market_orders(): TopicInfo(TopicKind.MARKET_ORDERS),
        t.meter_request(pod): TopicInfo(TopicKind.METER_REQUEST, pod=pod),
        t.meter_response(pod): TopicInfo(TopicKind.METER_RESPONSE, pod=pod),
        t.bms_setpoint(pod): TopicInfo(TopicKind.BMS_SETPOINT, pod=pod),
        t.bms_ack(pod): TopicInfo(TopicKind.BMS_ACK, pod=pod),
        t.clock_now(): TopicInfo(TopicKind.CLOCK_NOW),
        t.clock_register(name): TopicInfo(TopicKind.CLOCK_REGISTER, participant=name),
        t.clock_done(name): TopicInfo(TopicKind.CLOCK_DONE, participant=name),
    }
    if name != "orders":
        cases[t.market_session(name)] = TopicInfo(TopicKind.MARKET_SESSION, session=name)
    for topic, info in cases.items():
        assert t.parse(topic) == info
        assert parse_topic(topic, root) == info
    # the wildcard helpers match what they should
    assert topic_matches(t.all_pod_measures(), t.pod_measure(pod))
    assert not topic_matches(t.all_pod_measures(), t.pod_setpoint(pod))
    assert topic_matches(t.all_bms_setpoints(), t.bms_setpoint(pod))
    assert not topic_matches(t.all_bms_setpoints(), t.bms_ack(pod))
    assert topic_matches(t.all_clock_dones(), t.clock_done(name))


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("other/pod/IT001E00000001/measure", "not under the root"),
        ("flexx/pod/IT001E00000001/measure", "not under the root"),
        ("flex/pod/it001e00000001/measure", "not a POD code"),
        ("flex/pod/IT1/measure", "not a POD code"),
        ("flex/pod//measure", "not a POD code"),
        ("flex/pod/IT001E00000001/volume", "not a flexledger topic"),
        ("flex/pod/IT001E00000001/measure/extra", "not a flexledger topic"),
        ("flex/pod/+/measure", "wildcard"),
        ("flex/market/#", "wildcard"),
        ("flex/grid/bad sensor/measure", "not a topic-safe name"),
        ("flex/market/", "not a topic-safe name"),
        ("flex/clock/done/", "not a topic-safe name"),
        ("flex/clock/later", "not a flexledger topic"),
        ("flex/", "not a flexledger topic"),
        ("flex", "not under the root"),
        ("", "not under the root"),
    ],
)
def test_malformed_topics_are_rejected_clearly(topic: str, why: str) -> None:
    with pytest.raises(TopicError, match=why):
        parse_topic(topic)


@pytest.mark.parametrize(
    ("build", "why"),
    [
        (lambda t: t.pod_measure("IT001E0000000/1"), "not a POD code"),
        (lambda t: t.pod_setpoint("+"), "not a POD code"),
        (lambda t: t.grid_measure("a/b"), "not a topic-safe name"),
        (lambda t: t.grid_measure("#"), "not a topic-safe name"),
        (lambda t: t.market_session("orders"), "reserved"),
        (lambda t: t.market_session(""), "not a topic-safe name"),
        (lambda t: t.clock_done("x" * 65), "not a topic-safe name"),
    ],
)
def test_builders_refuse_names_that_would_break_a_topic(build: object, why: str) -> None:
    with pytest.raises(TopicError, match=why):
        build(DEFAULT_TOPICS)  # type: ignore[operator]


@pytest.mark.parametrize("root", ["", "a//b", "a/+", "#", "/flex", "flex/"])
def test_bad_roots_are_refused(root: str) -> None:
    with pytest.raises(TopicError, match="root"):
        Topics(root)


def test_roots_keep_deployments_apart() -> None:
    a, b = Topics("site-a/flex"), Topics("site-b/flex")
    assert not topic_matches(a.all_pod_measures(), b.pod_measure(POD))
    with pytest.raises(TopicError, match="not under the root"):
        a.parse(b.pod_measure(POD))


def test_market_wildcard_needs_the_kind() -> None:
    t = DEFAULT_TOPICS
    assert topic_matches(t.all_market_sessions(), t.market_orders())
    assert t.parse(t.market_orders()).kind is TopicKind.MARKET_ORDERS


@pytest.mark.parametrize(
    ("flt", "topic", "match"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a/b/c", False),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("a/b", "a/b", True),
    ],
)
def test_topic_matches(flt: str, topic: str, match: bool) -> None:
    assert topic_matches(flt, topic) is match
