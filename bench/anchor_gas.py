"""Gas per anchored sample: a window per transaction, concentrator batches, one sample per tx.

    .venv/bin/python bench/anchor_gas.py [--windows 40] [--batches 4] [--naive 225]

Starts its own anvil, deploys the contracts, and measures in the same run:

- `gas_per_sample_window`: each Light Node anchors one 225-sample window (900 s at 4 s) per
  transaction with `MeasurementAnchor.anchor` (the root is the only storage written). A quarter
  of the windows carry a set-point leaf and a non-zero `setpointsHash`, as on a day with orders.
- `gas_per_sample_batched`: a concentrator anchors one root over 50 devices' window leaves
  (kind 3) per transaction with `anchorBatch` (50 x 225 = 11,250 samples per transaction).
- `gas_per_sample_naive`: one transaction per sample, each sample anchored as its own one-leaf
  window on a second `MeasurementAnchor` deployed with `windowSeconds = 4` (the same contract
  and function, so the difference is batching alone).

Every figure is `gasUsed` of the receipts (intrinsic 21k, calldata and execution included)
divided by the samples they anchor. A proof of one sample of each mode is checked on chain.
Prints the figures, then a last line with one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.contracts import (
    ZERO32,
    FlexContracts,
    MeasurementAnchorClient,
    Sample,
    Window,
)
from node.deploy import DeployPlan, deploy, deploy_contract
from node.devnet import Devnet
from node.ids import id32
from node.keys import dev_account
from node.leaves import sample_leaf, setpoint_leaf, window_leaf
from node.merkle import MerkleTree

SAMPLES_PER_WINDOW = 225
WINDOW_S = 900
DEVICES_PER_BATCH = 50
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
GOALS = {"gas_per_sample_window": 250, "gas_per_sample_batched": 20}


@dataclass
class Mode:
    txs: int = 0
    gas: int = 0
    samples: int = 0
    max_tx_gas: int = 0

    def add(self, gas_used: int, samples: int) -> None:
        self.txs += 1
        self.gas += gas_used
        self.samples += samples
        self.max_tx_gas = max(self.max_tx_gas, gas_used)

    @property
    def per_sample(self) -> float:
        return self.gas / self.samples


def window_samples(pod: bytes, start: int, seed: int) -> list[Sample]:
    return [
        Sample(pod, start + 4 * i, 1500 - 3 * i + seed, 200 - i, 231_000 + (i * seed) % 900,
               (start - T0) // 4 + i)
        for i in range(SAMPLES_PER_WINDOW)
    ]


def leaves_of(samples: list[Sample]) -> list[bytes]:
    return [sample_leaf(s.pod, s.t, s.p_w, s.q_var, s.v_mv, s.seq) for s in samples]


def bench_windows(c: FlexContracts, n_windows: int, n_devices: int) -> Mode:
    mode = Mode()
    devices = [dev_account(f"ln:BENCH{d:04d}") for d in range(n_devices)]
    pods = [id32(f"IT001E9{d:07d}") for d in range(n_devices)]
    checked = False
    for k in range(n_windows):
        d = k % n_devices
        start = T0 + WINDOW_S * (k // n_devices)
        samples = window_samples(pods[d], start, k)
        leaves = leaves_of(samples)
        sp_hash = ZERO32
        if k % 4 == 3:
            sp = setpoint_leaf(pods[d], id32(f"setpoint-{k}"), start + 60)
            leaves.append(sp)
            sp_hash = id32(f"setpoints-{k}")  # keccak of the set-point leaves, in practice
        tree = MerkleTree(leaves)
        receipt = c.anchor.anchor(
            devices[d], pods[d], start, tree.root, SAMPLES_PER_WINDOW, sp_hash,
            gas=MeasurementAnchorClient.ANCHOR_GAS,
        )
        mode.add(receipt["gasUsed"], SAMPLES_PER_WINDOW)
        if not checked:
            assert c.anchor.verify_sample(samples[100], tree.proof(100))
            checked = True
    return mode


def bench_batched(c: FlexContracts, concentrator: Any, n_batches: int) -> Mode:
    mode = Mode()
    pods = [id32(f"IT001E8{d:07d}") for d in range(DEVICES_PER_BATCH)]
    for b in range(n_batches):
        start = T0 + WINDOW_S * b
        windows: list[Window] = []
        trees: list[MerkleTree] = []
        samples_of: list[list[Sample]] = []
        for d, pod in enumerate(pods):
            samples = window_samples(pod, start, d)
            tree = MerkleTree(leaves_of(samples))
            trees.append(tree)
            samples_of.append(samples)
            windows.append(Window(pod, start, tree.root, SAMPLES_PER_WINDOW))
        batch = MerkleTree(
            [window_leaf(w.pod, w.window_start, w.root, w.sample_count, w.setpoints_hash)
             for w in windows]
        )
        n_samples = SAMPLES_PER_WINDOW * DEVICES_PER_BATCH
        receipt = c.anchor.anchor_batch(
            concentrator, b + 1, batch.root, DEVICES_PER_BATCH, n_samples
        )
        mode.add(receipt["gasUsed"], n_samples)
        if b == 0:
            d = 17
            assert c.anchor.verify_batched(
                concentrator.address, 1, windows[d], batch.proof(d),
                trees[d].leaves[200], trees[d].proof(200),
            )
    return mode


def bench_naive(c: FlexContracts, deployer: Any, n_samples: int) -> Mode:
    """One sample per transaction: a one-leaf window on an anchor with 4-second windows."""
    naive_address = deploy_contract(
        c.anchor.w3, deployer, "MeasurementAnchor", ["address", "uint64"],
        [c.roles.address, 4],
    )
    naive = MeasurementAnchorClient(c.anchor.w3, naive_address)
    device = dev_account("ln:BENCH-NAIVE")
    pod = id32("IT001E70000000")
    naive.register_device(deployer, pod, device.address)
    mode = Mode()
    samples = window_samples(pod, T0, 1) * (1 + n_samples // SAMPLES_PER_WINDOW)
    for i in range(n_samples):
        s = samples[i]
        s = Sample(s.pod, T0 + 4 * i, s.p_w, s.q_var, s.v_mv, i)
        leaf = sample_leaf(s.pod, s.t, s.p_w, s.q_var, s.v_mv, s.seq)
        receipt = naive.anchor(device, pod, s.t, leaf, 1, gas=MeasurementAnchorClient.ANCHOR_GAS)
        mode.add(receipt["gasUsed"], 1)
        if i == 0:
            assert naive.verify_sample(s, [])
    return mode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--windows", type=int, default=40, help="window transactions")
    parser.add_argument("--devices", type=int, default=8, help="Light Nodes anchoring windows")
    parser.add_argument("--batches", type=int, default=4, help="concentrator transactions")
    parser.add_argument("--naive", type=int, default=225, help="one-sample transactions")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    deployer = dev_account("deployer")
    concentrator = dev_account("concentrator")
    devices: dict[str | bytes, str] = {
        f"IT001E9{d:07d}": dev_account(f"ln:BENCH{d:04d}").address for d in range(args.devices)
    }
    with Devnet() as devnet:
        w3 = devnet.web3()
        plan = DeployPlan(
            roles={"CONCENTRATOR": [concentrator.address]},
            devices=devices,
            fund_wei={dev_account("ln:BENCH-NAIVE").address: 10**21},
            window_seconds=WINDOW_S,
        )
        book = deploy(w3, deployer, plan)
        c = FlexContracts.from_address_book(w3, book)
        window = bench_windows(c, args.windows, args.devices)
        batched = bench_batched(c, concentrator, args.batches)
        naive = bench_naive(c, deployer, args.naive)
    elapsed = time.perf_counter() - started

    print(f"anchor gas on anvil (solc 0.8.30, cancun, optimizer 200), {elapsed:.1f} s")
    print(f"  window ({SAMPLES_PER_WINDOW} samples/tx): {window.txs} txs, "
          f"{window.gas / window.txs:,.0f} gas/tx (max {window.max_tx_gas:,}), "
          f"{window.per_sample:.1f} gas/sample (goal <= {GOALS['gas_per_sample_window']})")
    print(f"  batched ({DEVICES_PER_BATCH} devices x {SAMPLES_PER_WINDOW}/tx): {batched.txs} txs, "
          f"{batched.gas / batched.txs:,.0f} gas/tx, {batched.per_sample:.2f} gas/sample "
          f"(goal <= {GOALS['gas_per_sample_batched']})")
    print(f"  naive (1 sample/tx): {naive.txs} txs, {naive.per_sample:,.0f} gas/sample")
    result = {
        "gas_per_sample_window": round(window.per_sample, 2),
        "gas_per_sample_batched": round(batched.per_sample, 3),
        "gas_per_sample_naive": round(naive.per_sample, 1),
        "window_txs": window.txs,
        "window_gas_total": window.gas,
        "window_gas_per_tx_max": window.max_tx_gas,
        "window_samples": window.samples,
        "batched_txs": batched.txs,
        "batched_gas_total": batched.gas,
        "batched_samples": batched.samples,
        "naive_txs": naive.txs,
        "naive_gas_total": naive.gas,
        "naive_samples": naive.samples,
        "naive_method": "one-leaf window per sample, MeasurementAnchor.anchor with windowSeconds=4",
        "goals": GOALS,
        "goals_met": window.per_sample <= GOALS["gas_per_sample_window"]
        and batched.per_sample <= GOALS["gas_per_sample_batched"],
        "elapsed_s": round(elapsed, 2),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
