"""Every role-guarded function refuses an outsider with its own custom error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from node.contract_errors import (
    AccessControlUnauthorizedAccount,
    BaselineRegistryNotBrp,
    ContractError,
    FlexMarketNotOperator,
    FlexMarketSignerNotDso,
    FlexRolesNotAdmin,
    FlexRolesNotAggregator,
    FlexRolesNotOwnersAggregator,
    FlexRolesOwnerBound,
    FlexRolesSensorBound,
    FlexRolesSensorUnknown,
    MeasurementAnchorNotAdmin,
    MeasurementAnchorNotConcentrator,
    MeasurementAnchorNotDevice,
    SettlementNotAggregator,
    SettlementNotOperator,
    SettlementTokenNotAdmin,
)
from node.contracts import role_id
from node.eip712 import hash_struct, recover_typed
from node.ids import id32

from .conftest import Chain
from .flows import DAY, open_session, order, sign, validation

Z = bytes(32)
ONE = b"\x01" * 32


def _calls(chain: Chain) -> list[tuple[str, Callable[[Any], Any], type[ContractError]]]:
    c, p = chain.c, chain.p
    rec = {"session": Z, "awardHash": ONE, "baselineWh": 0, "measuredWh": 0, "deliveredWh": 0,
           "amountCents": 0, "claimCents": 0, "measurementRoot": Z, "baselineRoot": Z}
    v = validation(Z, 1, ONE)
    o = order(Z, ONE, ONE)
    return [
        ("grantRole", lambda a: c.roles.grant_role(a, "DSO", a.address),
         AccessControlUnauthorizedAccount),
        ("revokeRole", lambda a: c.roles.revoke_role(a, "DSO", p.dso.address),
         AccessControlUnauthorizedAccount),
        ("grantFrOwner", lambda a: c.roles.grant_fr_owner(a, a.address), FlexRolesNotAggregator),
        ("revokeFrOwner", lambda a: c.roles.revoke_fr_owner(a, p.owner.address),
         FlexRolesNotOwnersAggregator),
        ("registerSensor", lambda a: c.roles.register_sensor(a, id32("S9"), a.address),
         FlexRolesNotAdmin),
        ("revokeSensor", lambda a: c.roles.revoke_sensor(a, id32("S1")), FlexRolesNotAdmin),
        ("registerDevice", lambda a: c.anchor.register_device(a, chain.pod, a.address),
         MeasurementAnchorNotAdmin),
        ("revokeDevice", lambda a: c.anchor.revoke_device(a, chain.pod),
         MeasurementAnchorNotAdmin),
        ("anchor", lambda a: c.anchor.anchor(a, chain.pod, 900, ONE, 1),
         MeasurementAnchorNotDevice),
        ("anchorBatch", lambda a: c.anchor.anchor_batch(a, 1, ONE, 1, 1),
         MeasurementAnchorNotConcentrator),
        ("commitBaseline", lambda a: c.baselines.commit_baseline(a, DAY, ONE, 1),
         BaselineRegistryNotBrp),
        ("openSession", lambda a: c.market.open_session(a, ONE, 0, DAY, 96, Z, Z),
         FlexMarketNotOperator),
        ("closeGate", lambda a: c.market.close_gate(a, ONE, ONE, 1, 1), FlexMarketNotOperator),
        ("recordValidation",
         lambda a: c.market.record_validation(a, v, sign(chain, p.dso, "Validation", v)),
         FlexMarketNotOperator),
        ("commitOutcome", lambda a: c.market.commit_outcome(a, ONE, ONE, 1, 1),
         FlexMarketNotOperator),
        ("recordOrder", lambda a: c.market.record_order(a, o, sign(chain, p.dso, "Order", o)),
         FlexMarketNotOperator),
        ("markSettled", lambda a: c.market.mark_settled(a, ONE), FlexMarketNotOperator),
        ("mint", lambda a: c.token.mint(a, a.address, 1), SettlementTokenNotAdmin),
        ("settle", lambda a: c.settlement.settle(a, rec, p.dso.address, p.aggregator.address,
                                                 p.brp.address, DAY, []),
         SettlementNotOperator),
        ("payOwners", lambda a: c.settlement.pay_owners(a, ONE, [], []), SettlementNotAggregator),
    ]


GUARDED = [
    "grantRole", "revokeRole", "grantFrOwner", "revokeFrOwner", "registerSensor", "revokeSensor",
    "registerDevice", "revokeDevice", "anchor", "anchorBatch", "commitBaseline", "openSession",
    "closeGate", "recordValidation", "commitOutcome", "recordOrder", "markSettled", "mint",
    "settle", "payOwners",
]


@pytest.mark.parametrize("name", GUARDED)
def test_outsider_is_refused(chain: Chain, name: str) -> None:
    calls = {n: (fn, err) for n, fn, err in _calls(chain)}
    assert set(calls) == set(GUARDED)
    fn, err = calls[name]
    with pytest.raises(err) as info:
        fn(chain.p.outsider)
    assert chain.p.outsider.address in info.value.values


def test_other_roles_are_outsiders_too(chain: Chain) -> None:
    """A DSO is not a market operator, an aggregator not a BRP, a device not a concentrator."""
    c, p = chain.c, chain.p
    with pytest.raises(FlexMarketNotOperator):
        c.market.open_session(p.dso, ONE, 0, DAY, 96, Z, Z)
    with pytest.raises(BaselineRegistryNotBrp):
        c.baselines.commit_baseline(p.aggregator, DAY, ONE, 1)
    with pytest.raises(MeasurementAnchorNotConcentrator):
        c.anchor.anchor_batch(p.device, 1, ONE, 1, 1)
    with pytest.raises(SettlementNotOperator):
        c.settlement.settle(p.aggregator, {
            "session": Z, "awardHash": ONE, "baselineWh": 0, "measuredWh": 0, "deliveredWh": 0,
            "amountCents": 0, "claimCents": 0, "measurementRoot": Z, "baselineRoot": Z},
            p.dso.address, p.aggregator.address, p.brp.address, DAY, [])


def test_admin_grants_and_revokes(chain: Chain) -> None:
    c, p = chain.c, chain.p
    assert c.roles.is_admin(p.deployer.address)
    assert not c.roles.has_role("DSO", p.outsider.address)
    c.roles.grant_role(p.deployer, "DSO", p.outsider.address)
    assert c.roles.has_role("DSO_ROLE", p.outsider.address)
    # the new DSO's validation is accepted; once revoked, refused
    session = open_session(chain)
    c.market.close_gate(p.market, session, ONE, 1, 1)
    v = validation(session, 1, ONE)
    c.roles.revoke_role(p.deployer, "DSO", p.outsider.address)
    with pytest.raises(FlexMarketSignerNotDso):
        c.market.record_validation(p.market, v, sign(chain, p.outsider, "Validation", v))
    # FR owners are not granted by the admin through grantRole
    with pytest.raises(AccessControlUnauthorizedAccount):
        c.roles.grant_role(p.deployer, "FR_OWNER", p.owner.address)
    with pytest.raises(AccessControlUnauthorizedAccount):
        c.roles.grant_role(p.deployer, "FIELD_SENSOR", p.owner.address)


def test_fr_owners_belong_to_their_aggregator(chain: Chain) -> None:
    c, p = chain.c, chain.p
    c.roles.grant_fr_owner(p.aggregator, p.owner.address)
    assert c.roles.aggregator_of(p.owner.address) == p.aggregator.address
    assert c.roles.has_role("FR_OWNER", p.owner.address)
    with pytest.raises(FlexRolesOwnerBound):
        c.roles.grant_fr_owner(p.aggregator2, p.owner.address)
    with pytest.raises(FlexRolesNotOwnersAggregator):
        c.roles.revoke_fr_owner(p.aggregator2, p.owner.address)
    c.roles.revoke_fr_owner(p.aggregator, p.owner.address)
    assert c.roles.aggregator_of(p.owner.address) is None
    assert not c.roles.has_role("FR_OWNER", p.owner.address)
    c.roles.grant_fr_owner(p.aggregator2, p.owner.address)
    assert c.roles.aggregator_of(p.owner.address) == p.aggregator2.address


def test_sensors_bound_to_ids(chain: Chain) -> None:
    c, p = chain.c, chain.p
    s1 = id32("S1")
    assert c.roles.sensor_of(s1) == p.sensor.address
    assert c.roles.sensor_id_of(p.sensor.address) == s1
    assert c.roles.has_role("FIELD_SENSOR", p.sensor.address)
    with pytest.raises(FlexRolesSensorBound):
        c.roles.register_sensor(p.deployer, id32("S2"), p.sensor.address)
    c.roles.register_sensor(p.deployer, s1, p.owner2.address)  # rotate
    assert not c.roles.has_role("FIELD_SENSOR", p.sensor.address)
    assert c.roles.sensor_of(s1) == p.owner2.address
    c.roles.revoke_sensor(p.deployer, s1)
    assert c.roles.sensor_of(s1) is None
    with pytest.raises(FlexRolesSensorUnknown):
        c.roles.revoke_sensor(p.deployer, s1)


def test_domain_and_signer_recovery_agree_with_python(chain: Chain) -> None:
    c, p = chain.c, chain.p
    domain = c.roles.domain()
    assert c.roles.domain_separator() == domain.separator
    o = order(ONE, ONE, ONE)
    sig = sign(chain, p.tso, "Order", o)
    struct_hash = hash_struct("Order", o)
    assert c.roles.recover_signer(struct_hash, sig) == p.tso.address
    assert recover_typed(domain, "Order", o, sig) == p.tso.address
    assert c.roles.recover_signer(struct_hash, b"\x01" * 10) is None
    assert role_id("DSO") == role_id("DSO_ROLE") != role_id("TSO")


def test_admin_can_revoke_an_owner(chain: Chain) -> None:
    c, p = chain.c, chain.p
    c.roles.grant_fr_owner(p.aggregator, p.owner.address)
    c.roles.revoke_role(p.deployer, "AGGREGATOR", p.aggregator.address)
    with pytest.raises(FlexRolesNotOwnersAggregator):  # no longer an aggregator
        c.roles.revoke_fr_owner(p.aggregator, p.owner.address)
    c.roles.revoke_fr_owner(p.deployer, p.owner.address)
    assert not c.roles.has_role("FR_OWNER", p.owner.address)
    with pytest.raises(FlexRolesNotOwnersAggregator):  # nothing left to revoke
        c.roles.revoke_fr_owner(p.deployer, p.owner.address)
