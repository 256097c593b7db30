"""``flexledger demo``: what exists of the market day, on the embedded default.

The whole day (forecast, market, activation, settlement, audits) is built issue by issue; this
command runs the parts that exist and says which ones do not yet. Today: the ledger floor — a
devnet, the contracts, Light Node keys bound to their PODs, a quarter-hour of signed 4 s
samples per POD anchored as a Merkle root from each device's key, and proofs checked on chain.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["demo_command"]

console = Console()

NOT_YET = [
    "DSO forecast, power flow and violation localisation (issue: DSO Technical Platform)",
    "market sessions and clearing (issue: Market Platform)",
    "Light Node agents over MQTT and the SCD (issue: Light Nodes and SCD)",
    "the simulated world: grid, meters, devices, TSO, BRP (issue: the world)",
    "aggregator offers, settlement and payments (issue: aggregator and settlement)",
]


def _synthetic_day_profile(rng: random.Random, t_s: int, base_w: int) -> tuple[int, int, int]:
    """A household-like reading: base load with noise (the simulated meters come later)."""
    p = base_w + int(rng.gauss(0, base_w * 0.05))
    q = int(p * 0.2)
    v = int(230_000 + rng.gauss(0, 800))
    return p, q, v


def demo_command(
    pods: Annotated[int, typer.Option(min=1, max=200, help="How many PODs to anchor for.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic readings.")] = 7,
) -> None:
    """Run what exists of a market day on the embedded default (devnet, contracts, anchors)."""
    from flexledger.messages import MeasurementBatch, Sample
    from flexledger.settings import HomeSettings
    from flexledger.stack import dev_plan, open_chain
    from flexledger.time import SAMPLE_PERIOD_S, SAMPLES_PER_MTU, day_start_s, to_s
    from node.contract_errors import ContractError
    from node.contracts import Sample as ChainSample
    from node.deploy import deploy
    from node.ids import id32
    from node.keys import dev_account
    from node.merkle import MerkleTree, verify_proof
    from node.signing import LocalSigner, verify_envelope

    home = HomeSettings().home
    started = time.perf_counter()
    pod_codes = [f"IT001E{n:08d}" for n in range(1, pods + 1)]
    window_start = day_start_s(to_s(datetime.now(tz=UTC))) + 12 * 3600
    rng = random.Random(seed)

    console.rule("[bold]flexledger demo[/bold] — what exists today")
    with open_chain(home, fresh=True) as chain:
        book = deploy(
            chain.w3, dev_account("deployer"), dev_plan(pod_codes), book_path=chain.book_path
        )
        contracts = chain.contracts()
        domain = contracts.roles.domain()
        console.print(
            f"devnet {chain.rpc_url} (chain {book.chain_id}); contracts deployed, "
            f"{pods} Light Node keys bound to their PODs"
        )

        table = Table("samples", "root", "tx", "gas", "gas/sample", title="windows anchored")
        table.add_column("POD", no_wrap=True)
        batches: dict[str, MeasurementBatch] = {}
        for pod in pod_codes:
            device = dev_account(f"ln:{pod}")
            base_w = rng.randint(400, 3000)
            samples = []
            for k in range(SAMPLES_PER_MTU):
                t = window_start + k * SAMPLE_PERIOD_S
                p, q, v = _synthetic_day_profile(rng, t, base_w)
                samples.append(Sample(t_s=t, p_w=p, q_var=q, v_mv=v, seq=k))
            batch = MeasurementBatch(pod=pod, samples=samples)
            envelope = LocalSigner(device, domain).sign(batch)
            assert verify_envelope(envelope, domain) == device.address
            tree = MerkleTree(batch.leaves())
            receipt = contracts.anchor.anchor(
                device, id32(pod), window_start, tree.root, len(samples)
            )
            batches[pod] = batch
            table.add_row(
                str(len(samples)),
                "0x" + tree.root.hex()[:12] + "…",
                "0x" + bytes(receipt["transactionHash"]).hex()[:10] + "…",
                f"{receipt['gasUsed']:,}",
                f"{receipt['gasUsed'] / len(samples):.0f}",
                pod,
            )
        console.print(table)

        pod = pod_codes[0]
        batch = batches[pod]
        k = 100
        s = batch.samples[k]
        tree = MerkleTree(batch.leaves())
        proof = tree.proof(k)
        chain_sample = ChainSample(id32(pod), s.t_s, s.p_w, s.q_var, s.v_mv, s.seq)
        on_chain = contracts.anchor.verify_sample(chain_sample, proof)
        off_chain = verify_proof(tree.root, s.leaf(id32(pod)), proof)
        forged = ChainSample(id32(pod), s.t_s, s.p_w + 1, s.q_var, s.v_mv, s.seq)
        forged_ok = contracts.anchor.verify_sample(forged, proof)
        forged_text = "[red]VALID (bug)[/red]" if forged_ok else "[green]rejected[/green]"
        console.print(
            f"sample {k} of {pod} (t={s.t_s}, P={s.p_w} W): proof of {len(proof)} hashes — "
            f"on chain {'[green]valid[/green]' if on_chain else '[red]INVALID[/red]'}, "
            f"off chain {'[green]valid[/green]' if off_chain else '[red]INVALID[/red]'}; "
            f"the same sample with P+1 W: {forged_text}"
        )
        try:
            contracts.anchor.anchor(
                dev_account(f"ln:{pod}"), id32(pod), window_start, b"\x01" * 32, 1
            )
            overwrite = "[red]accepted (bug)[/red]"
        except ContractError as exc:
            overwrite = f"[green]refused[/green] ({type(exc).__name__})"
        console.print(f"re-anchoring that window with another root: {overwrite}")
        ok = on_chain and off_chain and not forged_ok and "refused" in overwrite

    console.print(
        f"\nchain state and address book kept under {home}/ "
        f"(try: flexledger chain anchor {pod} {window_start})"
    )
    console.print("[yellow]not built yet, so not run:[/yellow]")
    for item in NOT_YET:
        console.print(f"  - {item}")
    console.print(f"done in {time.perf_counter() - started:.1f} s")
    if not ok:
        raise typer.Exit(1)
