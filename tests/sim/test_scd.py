"""The world's parties against the real SCD (in process, on a devnet): the BRP's committed
baseline uploads (I-03), the history imports (I-01) and the TSO simulator learns the PODs
(I-02)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from flexledger.messages import CustomerEntry, CustomerList, ResourceInfo, ResourceKind
from flexledger.stack import dev_plan
from flexledger.time import DAY_S
from flexledger.transport import SignedHttpClient, Topics
from node.contracts import FlexContracts
from node.deploy import deploy
from node.devnet import Devnet
from node.keys import dev_account
from node.signing import LocalSigner
from sim import Brp, TsoSimulator, World, upload_history

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def contracts(small_world: World) -> Iterator[FlexContracts]:
    with Devnet() as devnet:
        w3 = devnet.web3()
        book = deploy(w3, dev_account("deployer"), dev_plan(small_world.pod_codes))
        yield FlexContracts.from_address_book(w3, book)


@pytest.fixture
async def scd_app(contracts: FlexContracts, tmp_path: Path) -> AsyncIterator[object]:
    from scd.api import create_app
    from scd.service import ScdService
    from scd.settings import ScdSettings

    settings = ScdSettings(home=tmp_path, db_url=None, db_schema="scd", mqtt_url=None,
                           topic_root=Topics("unused/flex").root)  # fmt: skip
    service = ScdService.from_settings(
        settings, contracts=contracts, from_block=contracts.roles.w3.eth.block_number + 1
    )
    app = create_app(service=service, run_service=False)
    async with app.router.lifespan_context(app):
        yield app
    service.close()


def _client(app: object, name: str | None, contracts: FlexContracts) -> SignedHttpClient:
    signer = LocalSigner(dev_account(name), contracts.roles.domain()) if name else None
    return SignedHttpClient(
        "http://scd",
        signer,
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
    )


async def test_brp_history_and_tso_against_the_scd(
    small_world: World, contracts: FlexContracts, scd_app: object
) -> None:
    world = small_world
    # I-03: refused before the root is on chain, accepted after
    brp = Brp(world, dev_account("brp").address)
    async with _client(scd_app, "brp", contracts) as scd:
        from flexledger.transport import ServiceError

        with pytest.raises(ServiceError, match="wrong_state"):
            await brp.upload(scd)
        brp.commit(contracts.baselines, dev_account("brp"))
        receipt = await brp.upload(scd)
        assert receipt["kind"] == "baseline"
        (stored,) = await scd.get(f"/baselines/{world.day_s}", {"brp": brp.address})
        assert stored["root"] == brp.baseline().root

    # I-01 history, uploaded by the DSO
    async with _client(scd_app, "dso", contracts) as scd:
        receipts = await upload_history(world, scd, chunk=10_000)
        assert sum(r["count"] for r in receipts) == len(world.pods) * 28 * 96
        pod = world.pod_codes[0]
        measures = await scd.get(
            "/measures/quarterly",
            {"pod": pod, "from_s": world.day_s - 7 * DAY_S, "to_s": world.day_s, "limit": 10_000},
        )
        assert len(measures) == 7 * 96 and {m["source"] for m in measures} == {"history"}

    # I-02: the aggregator registers its customers; the TSO learns them, located by area
    entries = [
        CustomerEntry(
            pod=p.code,
            fr_owner=dev_account(p.owner.removeprefix("dev:")).address,
            device=dev_account(f"ln:{p.code}").address,
            bus=f"bus:{p.bus}",
            resources=[
                ResourceInfo(resource_id=r.id, kind=ResourceKind[r.kind.upper()],
                             p_max_w=int(r.p_max_kw * 1000), available_from_s=world.day_s,
                             available_to_s=world.day_s + DAY_S)
                for r in p.resources
            ],
        )
        for p in world.scenario.pods
        if p.aggregator == "aggregator:1"
    ]  # fmt: skip
    async with _client(scd_app, "aggregator:1", contracts) as scd:
        await scd.post_signed(
            "/customers",
            CustomerList(
                aggregator=dev_account("aggregator:1").address,
                day_s=world.day_s,
                customers=entries,
                nonce=1,
            ),
        )
    async with _client(scd_app, None, contracts) as scd, _client(scd_app, "tso", contracts) as m:
        tso = TsoSimulator(world.scenario, m, scd)
        pods = await tso.learn_pods(page=2)  # paged
        assert sorted(p["pod"] for p in pods) == sorted(e.pod for e in entries)
        assert {p["area"] for p in pods} == {"HV-1"}
        flexible = sum(int(r.p_max_kw * 1000) for p in world.scenario.pods
                       if p.aggregator == "aggregator:1" for r in p.resources)  # fmt: skip
        assert TsoSimulator.capacity_w(pods) == {"HV-1": flexible}
