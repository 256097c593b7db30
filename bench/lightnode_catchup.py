"""How fast one Light Node catches up a backlog: a simulated day in one clock jump.

    .venv/bin/python bench/lightnode_catchup.py [--hours 24] [--max-batch 225] [--mqtt-url URL]

Starts its own anvil (contracts deployed, the device bound) and a private Mosquitto (or uses
``--mqtt-url``), and one Light Node on a scenario clock whose meter replays the committed
SimBench hour, tiled over ``--hours``. The clock then jumps to the end of the period at once —
what an accelerated scenario or an agent back from an outage sees — and the node must read,
number, sign, store (SQLite, synchronous=FULL), publish at QoS 1 and anchor (one transaction per
window) the whole backlog. A subscriber on the broker receives every message.

Measured (wall clock, from the jump):
- ``ingest_samples_per_s``: read + sign + store of every sample (the node's own work);
- ``published_samples_per_s``: until the subscriber has received every sample;
- ``anchored_samples_per_s``: until every window is anchored on chain and its manifest is out
  (``--anchor concentrator``: no transaction, until every signed manifest is out);
then, outside the timing, every received message's device signature is verified and the
sequence checked. Prints figures, then a last line with one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flexledger.messages import MeasurementBatch, MeterReading, Signed
from flexledger.settings import LightNodeSettings
from flexledger.time import ScenarioClock
from flexledger.transport import MosquittoProcess, MqttClient, Topics, decode_payload
from lightnode import LightNode, ListMeter, read_meter_csv
from node.contracts import FlexContracts
from node.deploy import DeployPlan, deploy
from node.devnet import Devnet
from node.keys import dev_account
from node.signing import verify_envelope

POD = "IT001E00000001"
CSV = Path(__file__).resolve().parent.parent / "tests/data/meters/semiurb-5.220-2-sw_2pods_1h.csv"
T0 = 1_767_286_800
WINDOW_S = 900


def day_of_readings(hours: int) -> list[MeterReading]:
    hour = read_meter_csv(CSV)[POD]
    return [
        MeterReading(pod=POD, t_s=r.t_s + 3600 * h, p_w=r.p_w, q_var=r.q_var, v_mv=r.v_mv)
        for h in range(hours)
        for r in hour
    ]


async def run(
    hours: int,
    max_batch: int,
    mqtt_url: str | None,
    chain: FlexContracts,
    anchor: Literal["direct", "concentrator"],
) -> dict[str, Any]:
    readings = day_of_readings(hours)
    n = len(readings)
    windows = n // 225
    topics = Topics("bench/flex")
    broker = None
    if mqtt_url is None:
        broker = MosquittoProcess()
        await broker.start()
        mqtt_url = broker.url
    received: list[bytes] = []
    counted = [0]
    done = asyncio.Event()

    sub = MqttClient(mqtt_url, "bench-scd", timeout_s=30)

    async def on_measure(_topic: str, payload: bytes) -> None:
        received.append(payload)
        # cheap count without decoding: every sample carries one "seq" key
        counted[0] += payload.count(b'"seq"')
        if counted[0] >= n:
            done.set()

    await sub.subscribe_raw(topics.pod_measure(POD), on_measure)
    await sub.start(wait_s=10)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ln-"))
    clock = ScenarioClock(T0)
    settings = LightNodeSettings(
        window_s=WINDOW_S, max_batch_samples=max_batch, health_interval_s=3600, anchor=anchor
    )
    node = LightNode(
        POD,
        account=dev_account(f"ln:{POD}"),
        meter=ListMeter(POD, readings),
        clock=clock,
        mqtt=MqttClient(mqtt_url, "bench-ln", timeout_s=30),
        contracts=chain,
        buffer=tmp / "ln.sqlite",
        domain=chain.roles.domain(),
        topics=topics,
        settings=settings,
        start_s=T0,
    )
    await node.start()
    t0 = time.perf_counter()
    await clock.advance(hours * 3600)  # to the first instant after the period
    ingest_s = published_s = anchored_s = None
    while anchored_s is None or published_s is None:
        h = node.health
        now = time.perf_counter() - t0
        if ingest_s is None and h.samples_read >= n:
            ingest_s = now
        if published_s is None and done.is_set():
            published_s = now
        anchored = h.windows_anchored >= windows or anchor == "concentrator"
        if anchored_s is None and anchored and h.manifests_published >= windows:
            anchored_s = now
        await asyncio.sleep(0.005)
    health = node.health
    await node.stop()
    await node.mqtt.close()
    await sub.close()
    if broker is not None:
        await broker.stop()

    # Outside the timing: every message decodes and verifies; the sequence is whole.
    domain = chain.roles.domain()
    seqs: list[int] = []
    for payload in received:
        env = decode_payload(Signed[MeasurementBatch], payload)
        verify_envelope(env, domain)
        seqs.extend(s.seq for s in env.message.samples)
    assert sorted(seqs) == list(range(n)), "samples lost or duplicated"
    assert ingest_s is not None
    return {
        "hours": hours,
        "samples": n,
        "windows": windows,
        "messages": len(received),
        "max_batch": max_batch,
        "anchor": anchor,
        "mean_message_bytes": round(sum(map(len, received)) / len(received)),
        "ingest_s": round(ingest_s, 3),
        "published_s": round(published_s, 3),
        "anchored_s": round(anchored_s, 3),
        "ingest_samples_per_s": round(n / ingest_s),
        "published_samples_per_s": round(n / published_s),
        "anchored_samples_per_s": round(n / anchored_s),
        "anchor_txs": health.windows_anchored,
        "publish_errors": health.publish_errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--max-batch", type=int, default=225)
    parser.add_argument("--mqtt-url", default=None, help="an existing broker (default: private)")
    parser.add_argument(
        "--anchor",
        choices=("direct", "concentrator"),
        default="direct",
        help="concentrator: no anchor transactions, the node's own work alone",
    )
    args = parser.parse_args()
    with Devnet() as devnet:
        w3 = devnet.web3()
        plan = DeployPlan(devices={POD: dev_account(f"ln:{POD}").address}, window_seconds=WINDOW_S)
        chain = FlexContracts.from_address_book(w3, deploy(w3, dev_account("deployer"), plan))
        result = asyncio.run(run(args.hours, args.max_batch, args.mqtt_url, chain, args.anchor))
    print(
        f"{result['samples']:,} samples ({result['hours']} h, {result['windows']} windows) in "
        f"{result['messages']} messages of ~{result['mean_message_bytes']:,} bytes:\n"
        f"  read+sign+store  {result['ingest_s']:.2f} s  {result['ingest_samples_per_s']:,}/s\n"
        f"  published        {result['published_s']:.2f} s  "
        f"{result['published_samples_per_s']:,}/s\n"
        f"  anchored         {result['anchored_s']:.2f} s  {result['anchored_samples_per_s']:,}/s"
    )
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
