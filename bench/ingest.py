"""SCD ingestion: Light Nodes' pre-signed samples over MQTT, verified and committed to
PostgreSQL, against the raw rate of the same broker.

    .venv/bin/python bench/ingest.py [--devices 2000] [--messages 30000] [--db-url URL]

Starts its own anvil and deploys the contracts with ``--devices`` Light Node keys registered
(each bound to its POD on chain, as in production). Publishers in other processes
(``--publishers``, each a share of the devices) play the Light Nodes: they sign every message
before the clock starts, then publish them at QoS 1 to a Mosquitto (``--broker``: by default a
private one on a free port, configured as a deployment should be — ``set_tcp_nodelay true``,
``max_queued_messages 10000`` — so that other users of the machine's broker neither load it nor
make it drop; ``--broker mqtt://127.0.0.1:1883`` for the machine's) as fast as the receiver
keeps up — together never more than ``--window`` messages ahead of what the receiver has
finished (below Mosquitto's default queue of 1,000 messages a client, the machine broker's), so
that the rate measured is the sustained one. Four runs, same publishers, same broker:

- ``raw_broker_qos1_per_s``: the baseline of the goal, measured as since the first version of
  this bench: one bare subscriber connection (``raw_subscribers``: 1) with flexledger's
  ``MqttClient`` (aiomqtt), counting one-sample messages, no verification, no storage;
- ``raw_paho_qos1_per_s``: the same with one bare paho connection on a thread — the client
  the ingest workers read with, so the stricter of the two baselines (``ratio_to_raw_paho``);
- ``samples_per_s``: the SCD (``scd.ScdService`` with ``--ingest-workers`` processes behind the
  shared subscription ``$share/scd/…/pod/+/measure``, each: decode, signature recovery, device
  binding, deduplication, COPY into PostgreSQL, committed) on one-sample messages, the
  real-time shape;
- ``accelerated_samples_per_s``: the SCD on 225-sample messages (a simulated day catching up).

``light_nodes_supported_at_4s`` = samples_per_s × 4. Goal: samples_per_s ≥ 2,500 (10,000
Light Nodes) and ≥ 50 % of the raw rate. Prints the figures, then one JSON object last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from flexledger.transport import MosquittoProcess, MqttClient, Topics, unique_client_id
from flexledger.transport.mqtt import parse_mqtt_url
from node.contracts import FlexContracts
from node.deploy import DeployPlan, deploy
from node.devnet import Devnet
from node.eip712 import Domain, sign_digest
from node.keys import dev_account
from scd.service import ScdService
from scd.settings import ScdSettings
from scd.verify import SampleRow, batch_digest, pod32_of
from scd.workers import paho_client

MACHINE_BROKER = "mqtt://127.0.0.1:1883"
PRIVATE_BROKER_OPTIONS = {"max_queued_messages": "10000"}
PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
T0 = 1_767_225_600
GOALS = {"samples_per_s": 2500, "ratio_to_raw": 0.5}


def pod_of(d: int) -> str:
    return f"IT001E{d:08d}"


def register_devices(w3: Any, c: FlexContracts, deployer: Any, n: int) -> None:
    """Bind ``n`` Light Node keys to their PODs: transactions sent back to back, with
    explicit nonces, receipts awaited at the end (anvil mines one block per transaction)."""
    nonce = w3.eth.get_transaction_count(deployer.address)
    chain_id = w3.eth.chain_id
    last = None
    for d in range(n):
        data = c.anchor.calldata(
            "registerDevice", pod32_of(pod_of(d)), dev_account(f"ln:{pod_of(d)}").address
        )
        tx = {
            "to": c.anchor.address,
            "data": data,
            "gas": 120_000,
            "nonce": nonce + d,
            "chainId": chain_id,
            "maxFeePerGas": 20 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "value": 0,
        }
        last = w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
    if last is not None:
        receipt = w3.eth.wait_for_transaction_receipt(last, timeout=300)
        assert receipt["status"] == 1


# -- the Light Nodes (another process) -----------------------------------------------------


def _payload(domain: Domain, key: bytes, signer: str, pod: str, rows: list[SampleRow]) -> bytes:
    digest = batch_digest(domain, pod32_of(pod), rows)
    sig = sign_digest(key, digest)
    samples = ",".join(
        f'{{"t_s":{t},"p_w":{p},"q_var":{q},"v_mv":{v},"seq":{s}}}' for s, t, p, q, v in rows
    )
    return (
        f'{{"message":{{"pod":"{pod}","samples":[{samples}]}},'
        f'"signer":"{signer}","signature":"0x{sig.hex()}"}}'
    ).encode()


def build(
    domain: Domain,
    devices: int,
    messages: int,
    per_message: int,
    seq0: int,
    root: str,
    share: tuple[int, int] = (0, 1),
) -> list[tuple[str, bytes]]:
    """The messages of the Light Nodes ``d`` with ``d % share[1] == share[0]``."""
    keys = {d: dev_account(f"ln:{pod_of(d)}") for d in range(share[0], devices, share[1])}
    out: list[tuple[str, bytes]] = []
    for m in range(messages):
        d = m % devices
        if d not in keys:
            continue
        k = m // devices
        rows: list[SampleRow] = []
        for j in range(per_message):
            seq = seq0 + k * per_message + j
            t = T0 + 4 * seq
            rows.append(
                (seq, t, 1500 + (seq * 7 + d) % 900 - 450, -120 + seq % 50, 230_000 + seq % 1300)
            )
        pod = pod_of(d)
        out.append(
            (
                f"{root}/pod/{pod}/measure",
                _payload(domain, bytes(keys[d].key), keys[d].address, pod, rows),
            )
        )
    return out


def publisher(
    broker: str,
    domain: Domain,
    share: tuple[int, int],
    jobs: Any,
    ready: Any,
    go: Any,
    progress: Any,
    sent: Any,
) -> None:
    """Signs its share of each job's messages, then publishes them when told, the publishers
    together never more than ``window`` ahead of the receiver."""
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-ln-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    url = parse_mqtt_url(broker)
    client.connect(url.host, url.port)
    client.loop_start()
    while True:
        job = jobs.get()
        if job is None:
            break
        devices, messages, per_message, seq0, root, window = job
        payloads = build(domain, devices, messages, per_message, seq0, root, share)
        ready.set()
        go.wait()
        infos = []
        for topic, payload in payloads:
            while sent.value - progress.value >= window:
                time.sleep(0.0002)
            with sent.get_lock():
                sent.value += 1
            infos.append(client.publish(topic, payload, qos=1))
        for info in infos:
            info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


# -- the receivers ----------------------------------------------------------------------


async def _follow(get: Any, ctl: dict[str, Any], target: int, stall_s: float = 20.0) -> float:
    """Copy the receiver's progress for the publishers; seconds until ``target`` is reached.
    Fails when nothing moves for ``stall_s`` (a message lost would stall the run forever)."""
    start = last_move = time.perf_counter()
    last = -1
    while True:
        value = get()
        ctl["progress"].value = value
        now = time.perf_counter()
        if value >= target:
            return now - start
        if value != last:
            last, last_move = value, now
        elif now - last_move > stall_s:
            raise TimeoutError(
                f"stalled at {value} of {target} received ({ctl['sent'].value} published)"
            )
        await asyncio.sleep(0.002)


async def run_raw(ctl: dict[str, Any], devices: int, messages: int, window: int) -> float:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}/flex")
    received = 0

    async def count(_: str, __: bytes) -> None:
        nonlocal received
        received += 1

    mqtt = MqttClient(ctl["broker"], unique_client_id("bench-raw"))
    await mqtt.subscribe_raw(topics.all_pod_measures(), count, qos=1)
    await mqtt.start(wait_s=10)
    try:
        elapsed = await _run(
            ctl, (devices, messages, 1, 0, topics.root, window), lambda: received, messages
        )
    finally:
        await mqtt.close()
    return messages / elapsed


async def run_raw_paho(ctl: dict[str, Any], devices: int, messages: int, window: int) -> float:
    """A bare paho subscriber made as the ingest workers make theirs (``scd.workers``), its
    network thread counting in ``on_message``."""
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}/flex")
    received = 0
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal received
        received += 1

    def on_subscribe(*_: Any) -> None:
        loop.call_soon_threadsafe(subscribed.set)

    client, url = paho_client(ctl["broker"], unique_client_id("bench-paho"), clean_session=True)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(url.host, url.port)
    client.loop_start()
    client.subscribe(topics.all_pod_measures(), 1)
    await asyncio.wait_for(subscribed.wait(), 10)
    try:
        elapsed = await _run(
            ctl, (devices, messages, 1, 0, topics.root, window), lambda: received, messages
        )
    finally:
        client.disconnect()
        client.loop_stop()
    return messages / elapsed


async def run_scd(
    ctl: dict[str, Any],
    service_settings: ScdSettings,
    contracts: FlexContracts,
    devices: int,
    messages: int,
    per_message: int,
    seq0: int,
    window: int,
) -> float:
    service = ScdService.from_settings(service_settings, contracts=contracts, from_block=0)
    await service.start()
    try:
        stats = service.stats.total
        base = stats["samples.stored"]
        elapsed = await _run(
            ctl,
            (devices, messages, per_message, seq0, service.topics.root, window),
            lambda: (stats["samples.stored"] - base) // per_message,
            messages,
        )
        rejected = sum(v for k, v in stats.items() if k.startswith("rejected."))
        assert rejected == 0, dict(stats)
    finally:
        await service.stop()
        service.close()
    return messages * per_message / elapsed


async def _run(ctl: dict[str, Any], job: tuple[Any, ...], get: Any, target: int) -> float:
    ctl["progress"].value = 0
    ctl["sent"].value = 0
    ctl["go"].clear()
    for ready, jobs in zip(ctl["ready"], ctl["jobs"], strict=True):
        ready.clear()
        jobs.put(job)
    while not all(r.is_set() for r in ctl["ready"]):  # the publishers sign their messages first
        await asyncio.sleep(0.05)
    ctl["go"].set()
    return await _follow(get, ctl, target)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.broker != "private":
        return await bench(args, args.broker)
    async with MosquittoProcess(options=PRIVATE_BROKER_OPTIONS) as broker:
        return await bench(args, broker.url)


async def bench(args: argparse.Namespace, broker: str) -> dict[str, Any]:
    deployer = dev_account("deployer")
    with Devnet() as devnet:
        w3 = devnet.web3()
        book = deploy(w3, deployer, DeployPlan(window_seconds=900))
        contracts = FlexContracts.from_address_book(w3, book)
        t = time.perf_counter()
        register_devices(w3, contracts, deployer, args.devices)
        print(
            f"{args.devices} Light Node devices registered on chain in "
            f"{time.perf_counter() - t:.1f} s",
            flush=True,
        )
        domain = contracts.roles.domain()
        ctx = mp.get_context("spawn")
        n = args.publishers
        ctl: dict[str, Any] = {
            "jobs": [ctx.Queue() for _ in range(n)],
            "ready": [ctx.Event() for _ in range(n)],
            "go": ctx.Event(),
            "broker": broker,
            "progress": ctx.Value("q", 0),
            "sent": ctx.Value("q", 0),
        }
        procs = [
            ctx.Process(
                target=publisher,
                args=(
                    ctl["broker"],
                    domain,
                    (i, n),
                    ctl["jobs"][i],
                    ctl["ready"][i],
                    ctl["go"],
                    ctl["progress"],
                    ctl["sent"],
                ),
                daemon=True,
            )
            for i in range(n)
        ]
        for proc in procs:
            proc.start()
        schema = f"bench_scd_{uuid.uuid4().hex[:8]}"
        settings = ScdSettings(
            home=Path("/tmp"),
            db_url=args.db_url,
            db_schema=schema,
            mqtt_url=ctl["broker"],
            mqtt_client_id=unique_client_id("bench-scd"),
            topic_root=f"bench-{uuid.uuid4().hex[:8]}/flex",
            chain_poll_s=1.0,
            verify_workers=args.verify_workers,
            ingest_workers=args.ingest_workers,
        )
        try:
            raw = await run_raw(ctl, args.devices, args.messages, args.window)
            print(
                f"raw broker QoS 1, one bare MqttClient subscriber: {raw:,.0f} messages/s",
                flush=True,
            )
            raw_paho = await run_raw_paho(ctl, args.devices, args.messages, args.window)
            print(
                f"raw broker QoS 1, one bare paho subscriber: {raw_paho:,.0f} messages/s",
                flush=True,
            )
            rt = await run_scd(
                ctl, settings, contracts, args.devices, args.messages, 1, 0, args.window
            )
            print(
                f"SCD, one sample per message, verified and committed: {rt:,.0f} samples/s",
                flush=True,
            )
            acc_msgs = max(args.devices // 10, args.accelerated // 225)
            acc = await run_scd(
                ctl,
                settings,
                contracts,
                args.devices,
                acc_msgs,
                225,
                10_000_000,
                max(4, args.window // 40),
            )
            print(f"SCD, 225 samples per message: {acc:,.0f} samples/s", flush=True)
        finally:
            for jobs in ctl["jobs"]:
                jobs.put(None)
            for proc in procs:
                proc.join(10)
                if proc.is_alive():
                    proc.terminate()
            if args.db_url.startswith("postgresql"):
                engine = create_engine(args.db_url)
                with engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                engine.dispose()
    return {
        "samples_per_s": round(rt),
        "raw_broker_qos1_per_s": round(raw),
        "ratio_to_raw": round(rt / raw, 3),
        "raw_subscribers": 1,
        "raw_client": "flexledger MqttClient (aiomqtt), one connection",
        "raw_paho_qos1_per_s": round(raw_paho),
        "ratio_to_raw_paho": round(rt / raw_paho, 3),
        "ingest_workers": args.ingest_workers,
        "light_nodes_supported_at_4s": round(rt * 4),
        "accelerated_samples_per_s": round(acc),
        "devices_registered": args.devices,
        "messages": args.messages,
        "accelerated_samples": acc_msgs * 225,
        "publisher_window": args.window,
        "verify_workers": args.verify_workers,
        "publisher_processes": args.publishers,
        "database": "postgresql" if args.db_url.startswith("postgresql") else "sqlite",
        "broker": "private mosquitto" if args.broker == "private" else args.broker,
        "cpus": os.cpu_count(),
        "goal_met": rt >= GOALS["samples_per_s"] and rt / raw >= GOALS["ratio_to_raw"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=2000, help="Light Nodes registered")
    parser.add_argument("--messages", type=int, default=30_000, help="one-sample messages a run")
    parser.add_argument("--accelerated", type=int, default=90_000, help="samples, 225 a message")
    parser.add_argument(
        "--window",
        type=int,
        default=800,
        help="messages the publisher may be "
        "ahead of the receiver (below Mosquitto's 1,000-message queue)",
    )
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=2,
        help="SCD ingest processes behind the MQTT shared subscription (1: the service's own)",
    )
    parser.add_argument(
        "--verify-workers",
        type=int,
        default=0,
        help="SCD processes decoding and verifying (0: its own thread)",
    )
    parser.add_argument(
        "--publishers",
        type=int,
        default=2,
        help="processes playing the Light Nodes (each a share of the devices)",
    )
    parser.add_argument(
        "--broker",
        default="private",
        help="'private' (a Mosquitto of the bench's own, on a free port) or an mqtt:// URL, "
        f"e.g. the machine's {MACHINE_BROKER}",
    )
    parser.add_argument("--db-url", default=os.environ.get("FLEX_DB_URL", PG_URL))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(main_async(args))
    print(
        f"goal: >= {GOALS['samples_per_s']} samples/s and >= 50 % of raw: "
        f"{'met' if result['goal_met'] else 'NOT met'}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
