"""The event reader pages logs and notices a chain that was reset."""

from __future__ import annotations

import pytest

from node.events import ChainReset, EventReader

from .conftest import Chain

T0 = 1_767_225_600


def _anchor(chain: Chain, k: int) -> None:
    chain.c.anchor.anchor(chain.p.device, chain.pod, T0 + 900 * k, bytes([k + 1]) * 32, 225)


def test_pages_and_decodes(chain: Chain) -> None:
    start = chain.w3.eth.block_number + 1
    reader = EventReader(chain.w3, [chain.c.anchor, chain.c.market], from_block=start,
                         page_size=2)
    for k in range(5):
        _anchor(chain, k)
    events = reader.poll()
    assert [e.args["windowStart"] for e in events] == [T0 + 900 * k for k in range(5)]
    assert {e.name for e in events} == {"MeasurementsAnchored"}
    assert all(e.address == chain.c.anchor.address for e in events)
    assert reader.poll() == []
    _anchor(chain, 5)
    (last,) = reader.poll()
    assert last.args["root"] == bytes([6]) * 32
    assert reader.checkpoint is not None and reader.checkpoint[0] == last.block_number


def test_notices_head_going_back_and_replaced_blocks(chain: Chain) -> None:
    w3 = chain.w3
    reader = EventReader(w3, [chain.c.anchor], from_block=w3.eth.block_number + 1)
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    _anchor(chain, 0)
    _anchor(chain, 1)
    assert len(reader.poll()) == 2
    w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
    with pytest.raises(ChainReset):  # the head went backwards
        reader.poll()
    _anchor(chain, 2)
    _anchor(chain, 3)  # same height again, other blocks
    with pytest.raises(ChainReset) as err:
        reader.poll()
    assert err.value.now_hash is not None and err.value.now_hash != err.value.seen_hash

    flagging = EventReader(w3, [chain.c.anchor], from_block=w3.eth.block_number - 1,
                           on_reset="flag")
    assert len(flagging.poll()) == 2
    snap2 = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    w3.provider.make_request("evm_revert", [snap2])  # type: ignore[arg-type]
    w3.provider.make_request("anvil_mine", [1])  # type: ignore[arg-type]
    assert flagging.poll() == []
    assert not flagging.reset_detected  # nothing the reader saw was replaced
    flagging.resume((flagging.next_block - 1, b"\x00" * 32))
    assert flagging.poll() == [] and flagging.reset_detected
    flagging.restart()
    assert len(flagging.poll()) == 2
