"""The balance responsible party (I-03): per POD the next day's schedule per MTU, from its own
forecast, signed, its root committed on chain before gate closure, uploaded to the SCD.

The BRP forecasts from the metered history it holds (the same quarterly measures the world's
history is made of, :mod:`sim.history`), not from the truth: per POD and MTU the mean of the same
weekday over the last weeks (at least one week of history is needed), times ``1 +`` a seeded
error of ``noise.brp_pct`` percent. Values are integer Wh, load convention.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from flexledger.messages import BaselineValue, BrpBaseline, h32
from flexledger.time import DAY_S, MTU_S, MTUS_PER_DAY
from node.signing import commitment_root
from sim.history import history_energy_wh
from sim.rng import Stream, rng

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from hexbytes import HexBytes

    from flexledger.transport import SignedHttpClient
    from node.contracts import BaselineRegistryClient
    from sim.world import World

__all__ = ["Brp", "brp_forecast_wh"]

log = logging.getLogger(__name__)


def brp_forecast_wh(world: World) -> dict[str, NDArray[np.int64]]:
    """The BRP's schedule per POD: 96 integer Wh (see the module docstring).

    Raises:
        ValueError: fewer than 7 days of history.
    """
    scenario = world.scenario
    days = scenario.history_days
    if days < 7:
        raise ValueError(f"the BRP needs a week of history, the scenario has {days} day(s)")
    _, energy = history_energy_wh(world)
    per_day = energy.reshape(len(world.pods), days, MTUS_PER_DAY)
    same_weekday = list(range(days - 7, -1, -7))  # day indices 7, 14, … days before
    mean = per_day[:, same_weekday, :].mean(axis=1)
    pct = scenario.noise.brp_pct / 100
    out = {}
    for p, pod in enumerate(world.pods):
        error = rng(scenario.seed, Stream.BRP, pod.index).normal(0.0, pct, MTUS_PER_DAY)
        out[pod.code] = np.rint(mean[p] * (1.0 + error)).astype(np.int64)
    return out


class Brp:
    """The BRP of the world's PODs.

    Args:
        world: the world (its scenario, PODs and history).
        address: the BRP's address (``dev:brp``'s in the embedded default).
        nonce: the nonce of its baseline message.
    """

    def __init__(self, world: World, address: str, *, nonce: int = 1) -> None:
        self.world = world
        self.address = address
        self.nonce = nonce
        self.schedule = brp_forecast_wh(world)

    @property
    def day_s(self) -> int:
        return self.world.day_s

    def baseline(self) -> BrpBaseline:
        """The (unsigned) I-03 message: every POD's 96 values and their Merkle root."""
        values = [
            BaselineValue(pod=pod, mtu_start_s=self.day_s + m * MTU_S, e_wh=int(e))
            for pod, wh in sorted(self.schedule.items())
            for m, e in enumerate(wh.tolist())
        ]
        leaves = [v.leaf() for v in values]  # already by POD code, then MTU
        return BrpBaseline(
            brp=self.address,
            day_s=self.day_s,
            values=values,
            root=h32(commitment_root(leaves)),
            nonce=self.nonce,
        )

    def commit(
        self, registry: BaselineRegistryClient, account: LocalAccount, *, gas: int | None = None
    ) -> Any:
        """Commit the baseline's root on chain (``BaselineRegistry.commitBaseline``) from
        ``account`` (the BRP's key); the transaction receipt. Do it before gate closure."""
        message = self.baseline()
        if account.address != message.brp:
            raise ValueError(f"the baseline is {message.brp}'s, the key is {account.address}'s")
        root: HexBytes | bytes = bytes.fromhex(message.root.removeprefix("0x"))
        receipt = registry.commit_baseline(
            account, self.day_s - self.day_s % DAY_S, bytes(root), len(message.pods), gas=gas
        )
        log.info("BRP baseline root %s committed for day %d", message.root, self.day_s)
        return receipt

    async def upload(self, scd: SignedHttpClient) -> Any:
        """Sign (with ``scd``'s signer, the BRP) and ``POST /baselines``; the SCD's receipt."""
        return await scd.post_signed("/baselines", self.baseline())
