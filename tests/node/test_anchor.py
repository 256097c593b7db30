"""Measurement anchors: device binding, once per window, proofs on chain and off chain."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.contract_errors import (
    MeasurementAnchorBatchTaken,
    MeasurementAnchorDeviceBound,
    MeasurementAnchorEmptyRoot,
    MeasurementAnchorNoDevice,
    MeasurementAnchorNotAdmin,
    MeasurementAnchorNotConcentrator,
    MeasurementAnchorNotDevice,
    MeasurementAnchorWindowTaken,
    MeasurementAnchorWindowUnaligned,
)
from node.contracts import Sample, Window
from node.events import EventReader
from node.leaves import sample_leaf, setpoint_leaf, window_leaf
from node.merkle import MerkleTree, verify_proof

from .conftest import WINDOW_S, Chain

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, a multiple of 900


def window_samples(pod: bytes, start: int, n: int = 225, seed: int = 0) -> list[Sample]:
    return [
        Sample(pod, start + 4 * i, 1000 + 7 * i - seed, -50 + i, 230_000 + i, seed * 1000 + i)
        for i in range(n)
    ]


def tree_of(samples: list[Sample], extra: list[bytes] | None = None) -> MerkleTree:
    leaves = [sample_leaf(s.pod, s.t, s.p_w, s.q_var, s.v_mv, s.seq) for s in samples]
    return MerkleTree(leaves + (extra or []))


def test_anchor_once_and_never_overwritten(chain: Chain) -> None:
    c, p = chain.c, chain.p
    tree = tree_of(window_samples(chain.pod, T0))
    receipt = c.anchor.anchor(p.device, chain.pod, T0, tree.root, 225)
    assert receipt["status"] == 1
    assert c.anchor.window_root(chain.pod, T0) == tree.root
    other = tree_of(window_samples(chain.pod, T0, seed=1)).root
    with pytest.raises(MeasurementAnchorWindowTaken) as err:
        c.anchor.anchor(p.device, chain.pod, T0, other, 225)
    assert err.value.kwargs == {"pod": chain.pod, "windowStart": T0}
    # also when sent with fixed gas (mined, reverted, error found by replay)
    with pytest.raises(MeasurementAnchorWindowTaken):
        c.anchor.anchor(p.device, chain.pod, T0, other, 225, gas=c.anchor.ANCHOR_GAS)
    assert c.anchor.window_root(chain.pod, T0) == tree.root


def test_anchor_rules(chain: Chain) -> None:
    c, p = chain.c, chain.p
    root = b"\x01" * 32
    with pytest.raises(MeasurementAnchorWindowUnaligned):
        c.anchor.anchor(p.device, chain.pod, T0 + 4, root, 1)
    with pytest.raises(MeasurementAnchorEmptyRoot):
        c.anchor.anchor(p.device, chain.pod, T0, bytes(32), 1)
    with pytest.raises(MeasurementAnchorNotDevice):  # another POD's device
        c.anchor.anchor(p.device2, chain.pod, T0, root, 1)
    with pytest.raises(MeasurementAnchorNotDevice):
        c.anchor.anchor(p.outsider, chain.pod, T0, root, 1)
    assert c.anchor.window_root(chain.pod, T0) is None


def test_anchor_event_carries_count_and_setpoints_hash(chain: Chain) -> None:
    c, p = chain.c, chain.p
    reader = EventReader(chain.w3, [c.anchor], from_block=chain.w3.eth.block_number + 1)
    c.anchor.anchor(p.device, chain.pod, T0, b"\x05" * 32, 200, b"\x06" * 32)
    (event,) = reader.poll()
    assert event.name == "MeasurementsAnchored"
    assert event.args == {
        "pod": chain.pod,
        "windowStart": T0,
        "root": b"\x05" * 32,
        "sampleCount": 200,
        "setpointsHash": b"\x06" * 32,
    }


def test_anchor_writes_one_storage_slot(chain: Chain) -> None:
    """The root is the only storage written: the anchor costs one fresh SSTORE, no more."""
    c, p = chain.c, chain.p
    receipt = c.anchor.anchor(p.device, chain.pod, T0, b"\x07" * 32, 225, b"\x08" * 32)
    # 21000 base + ~2k calldata + 22.1k for one new slot + event and checks; a second new
    # slot would add 20k+.
    assert receipt["gasUsed"] < 56_250, receipt["gasUsed"]
    assert receipt["gasUsed"] / 225 <= 250


def test_device_rotation_and_revocation(chain: Chain) -> None:
    c, p = chain.c, chain.p
    new_key = p.owner2  # any fresh key
    c.anchor.register_device(p.deployer, chain.pod, new_key.address)
    assert c.anchor.device_of(chain.pod) == new_key.address
    assert c.anchor.pod_of(p.device.address) is None
    with pytest.raises(MeasurementAnchorNotDevice):
        c.anchor.anchor(p.device, chain.pod, T0, b"\x01" * 32, 1)
    c.anchor.anchor(new_key, chain.pod, T0, b"\x01" * 32, 1)
    # a key bound to one POD cannot be bound to another
    with pytest.raises(MeasurementAnchorDeviceBound):
        c.anchor.register_device(p.deployer, chain.pod2, new_key.address)
    c.anchor.revoke_device(p.deployer, chain.pod)
    assert c.anchor.device_of(chain.pod) is None
    with pytest.raises(MeasurementAnchorNotDevice):
        c.anchor.anchor(new_key, chain.pod, T0 + WINDOW_S, b"\x01" * 32, 1)
    with pytest.raises(MeasurementAnchorNoDevice):
        c.anchor.revoke_device(p.deployer, chain.pod)
    # the anchored window stays
    assert c.anchor.window_root(chain.pod, T0) == b"\x01" * 32


def test_device_admin_only(chain: Chain) -> None:
    c, p = chain.c, chain.p
    with pytest.raises(MeasurementAnchorNotAdmin):
        c.anchor.register_device(p.outsider, chain.pod, p.outsider.address)
    with pytest.raises(MeasurementAnchorNotAdmin):
        c.anchor.revoke_device(p.market, chain.pod)
    with pytest.raises(MeasurementAnchorNotConcentrator):
        c.anchor.anchor_batch(p.device, 1, b"\x01" * 32, 1, 1)


def test_proofs_on_chain_and_off_chain(chain: Chain) -> None:
    c, p = chain.c, chain.p
    samples = window_samples(chain.pod, T0)
    sp = setpoint_leaf(chain.pod, b"\x99" * 32, T0 + 100)
    tree = tree_of(samples, [sp])
    c.anchor.anchor(p.device, chain.pod, T0, tree.root, 225, b"\x42" * 32)
    for i in (0, 1, 112, 223, 224):
        s = samples[i]
        leaf = tree.leaves[i]
        proof = tree.proof(i)
        assert verify_proof(tree.root, leaf, proof)
        assert c.anchor.verify(chain.pod, T0, leaf, proof)
        assert c.anchor.verify_sample(s, proof)
        # any changed field fails, on chain and off chain
        for changed in (
            Sample(s.pod, s.t, s.p_w + 1, s.q_var, s.v_mv, s.seq),
            Sample(s.pod, s.t, s.p_w, s.q_var, s.v_mv + 1, s.seq),
            Sample(s.pod, s.t, s.p_w, s.q_var - 1, s.v_mv, s.seq),
            Sample(s.pod, s.t, s.p_w, s.q_var, s.v_mv, s.seq + 1),
            Sample(chain.pod2, s.t, s.p_w, s.q_var, s.v_mv, s.seq),
        ):
            bad = sample_leaf(changed.pod, changed.t, changed.p_w, changed.q_var, changed.v_mv,
                              changed.seq)
            assert not verify_proof(tree.root, bad, proof)
            assert not c.anchor.verify_sample(changed, proof)
    # the set-point leaf is proven too (it is the 226th leaf)
    assert c.anchor.verify(chain.pod, T0, sp, tree.proof(225))
    # a proof against a window that was not anchored fails
    assert not c.anchor.verify(chain.pod, T0 + WINDOW_S, tree.leaves[0], tree.proof(0))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(0, 224), flip=st.integers(0, 255), byte=st.integers(0, 31))
def test_any_changed_leaf_fails(chain: Chain, index: int, flip: int, byte: int) -> None:
    c, p = chain.c, chain.p
    if c.anchor.window_root(chain.pod, T0) is None:
        tree = tree_of(window_samples(chain.pod, T0))
        c.anchor.anchor(p.device, chain.pod, T0, tree.root, 225)
    tree = tree_of(window_samples(chain.pod, T0))
    leaf = bytearray(tree.leaves[index])
    leaf[byte] ^= flip or 1
    assert not c.anchor.verify(chain.pod, T0, bytes(leaf), tree.proof(index))
    assert not verify_proof(tree.root, bytes(leaf), tree.proof(index))
    assert c.anchor.verify(chain.pod, T0, tree.leaves[index], tree.proof(index))


def test_concentrator_batch(chain: Chain) -> None:
    c, p = chain.c, chain.p
    pods = [chain.pod, chain.pod2]
    trees = [tree_of(window_samples(pod, T0, seed=k)) for k, pod in enumerate(pods)]
    windows = [Window(pod, T0, t.root, 225) for pod, t in zip(pods, trees, strict=True)]
    wleaves = [window_leaf(w.pod, w.window_start, w.root, w.sample_count, w.setpoints_hash)
               for w in windows]
    batch = MerkleTree(wleaves)
    c.anchor.anchor_batch(p.concentrator, 7, batch.root, 2, 450)
    assert c.anchor.batch_root(p.concentrator.address, 7) == batch.root
    with pytest.raises(MeasurementAnchorBatchTaken):
        c.anchor.anchor_batch(p.concentrator, 7, batch.root, 2, 450)
    for k, w in enumerate(windows):
        assert c.anchor.window_leaf(w) == wleaves[k]
        leaf, proof = trees[k].leaves[5], trees[k].proof(5)
        assert c.anchor.verify_batched(
            p.concentrator.address, 7, w, batch.proof(k), leaf, proof
        )
        # wrong window root, wrong batch, wrong concentrator, wrong leaf
        forged = Window(w.pod, w.window_start, b"\x01" * 32, w.sample_count)
        assert not c.anchor.verify_batched(
            p.concentrator.address, 7, forged, batch.proof(k), leaf, proof
        )
        assert not c.anchor.verify_batched(
            p.concentrator.address, 8, w, batch.proof(k), leaf, proof
        )
        assert not c.anchor.verify_batched(p.outsider.address, 7, w, batch.proof(k), leaf, proof)
        assert not c.anchor.verify_batched(
            p.concentrator.address, 7, w, batch.proof(k), trees[k].leaves[6], proof
        )
