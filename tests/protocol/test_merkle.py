"""Merkle trees: proofs verify, and fail for any changed leaf or proof."""

from __future__ import annotations

import pytest
from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from flexledger.messages.leaves import leaf_hash, sample_data, sample_leaf
from node.merkle import MerkleTree, verify_proof

leaves_st = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


@given(leaves_st, st.data())
def test_every_proof_verifies_and_a_changed_leaf_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(i)
    assert verify_proof(tree.root, leaves[i], proof)
    changed = bytes([leaves[i][0] ^ 1]) + leaves[i][1:]
    assert not verify_proof(tree.root, changed, proof)
    if proof:
        bad = [bytes([proof[0][0] ^ 0x80]) + proof[0][1:], *proof[1:]]
        assert not verify_proof(tree.root, leaves[i], bad)


def test_single_leaf_and_empty_tree() -> None:
    leaf = leaf_hash(b"x")
    assert MerkleTree([leaf]).root == leaf
    assert MerkleTree([leaf]).proof(0) == []
    with pytest.raises(ValueError):
        MerkleTree([])


def test_proof_length_is_logarithmic() -> None:
    leaves = [sample_leaf(b"\x01" * 32, 4 * i, i, 0, 230_000, i) for i in range(225)]
    tree = MerkleTree(leaves)
    assert max(len(tree.proof(i)) for i in range(225)) == 8


def test_sample_encoding_is_fixed_width_and_range_checked() -> None:
    data = sample_data(b"\x01" * 32, 1_000, -5, 7, 230_000, 3)
    assert len(data) == 7 * 32 and data[31] == 1  # kind 1 in the first word
    with pytest.raises(ValueError, match="p_w"):
        sample_data(b"\x01" * 32, 1_000, 2**63, 0, 0, 0)


@given(
    pod=st.binary(min_size=32, max_size=32),
    t=st.integers(0, 2**64 - 1),
    p_w=st.integers(-(2**63), 2**63 - 1),
    q_var=st.integers(-(2**63), 2**63 - 1),
    v_mv=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
)
def test_sample_encoding_is_abi_encode(
    pod: bytes, t: int, p_w: int, q_var: int, v_mv: int, seq: int
) -> None:
    types = ["uint8", "bytes32", "uint64", "int64", "int64", "uint64", "uint64"]
    assert sample_data(pod, t, p_w, q_var, v_mv, seq) == encode(
        types, [1, pod, t, p_w, q_var, v_mv, seq]
    )


@given(
    st.lists(
        st.tuples(
            st.integers(1, 96),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(0, 225),
            st.booleans(),
            st.sampled_from(["history", "lightnode"]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_history_values_hash_is_keccak_of_abi_encode(
    rows: list[tuple[int, int, int, bool, str]],
) -> None:
    from flexledger.messages import MeasureHistory, QuarterlyMeasure, id32
    from flexledger.messages.leaves import keccak256

    day = 1_796_256_000
    values = [
        QuarterlyMeasure(
            pod="IT001E00000001",
            mtu_start_s=day - 900 * k,
            e_wh=e,
            sample_count=n,
            certified=c,
            source=src,
        )
        for k, e, n, c, src in rows
    ]
    msg = MeasureHistory(uploader="0x" + "11" * 20, values=values, nonce=1)
    types = ["bytes32", "uint64", "int64", "uint32", "bool", "bytes32"]
    want = keccak256(
        b"".join(
            encode(
                types,
                [id32(v.pod), v.mtu_start_s, v.e_wh, v.sample_count, v.certified, id32(v.source)],
            )
            for v in values
        )
    )
    assert msg.values_hash() == want


@given(
    pod=st.binary(min_size=32, max_size=32),
    start=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    count=st.integers(0, 2**32 - 1),
    sp=st.binary(min_size=32, max_size=32),
)
def test_window_leaf_is_abi_encode(
    pod: bytes, start: int, root: bytes, count: int, sp: bytes
) -> None:
    from flexledger.messages.leaves import KIND_WINDOW, window_leaf

    types = ["uint8", "bytes32", "uint64", "bytes32", "uint32", "bytes32"]
    want = leaf_hash(encode(types, [KIND_WINDOW, pod, start, root, count, sp]))
    assert window_leaf(pod, start, root, count, sp) == want
    with pytest.raises(ValueError):
        window_leaf(pod, start, root, 2**32, sp)
