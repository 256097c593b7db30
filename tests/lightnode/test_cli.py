"""``flexledger lightnode run`` as a real process on the wall clock: killed with SIGKILL and
started again on its buffer, it continues its sequence and loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexledger.cli import app
from flexledger.transport import MqttClient, Topics
from node.addressbook import CONTRACT_NAMES, AddressBook
from node.devnet import Devnet
from tests.lightnode.certifier import Certifier
from tests.lightnode.conftest import (
    METER_CSV,
    SHARED_MOSQUITTO,
    T0,
    WINDOW_S,
    Chain,
    MakeClient,
)
from tests.lightnode.helpers import eventually

POD = "IT001E00000001"


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(60)
async def test_killed_process_restarts_on_its_buffer(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path, devnet: Devnet
) -> None:
    book = tmp_path / "addresses.json"
    chain.book.save(book)
    now = int(time.time())
    start = now - now % WINDOW_S - 2 * WINDOW_S  # two windows to catch up at once
    prefix = f"test{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FLEX_MQTT_CLIENT_PREFIX": prefix, "FLEX_HOME": str(tmp_path / "home")}
    args = [
        sys.executable, "-m", "flexledger", "--log-level", "INFO", "lightnode", "run",
        "--pod", POD, "--meter-csv", str(METER_CSV), "--csv-shift", str(start - T0),
        "--start-s", str(start), "--buffer", str(tmp_path / "ln.sqlite"),
        "--mqtt-url", SHARED_MOSQUITTO, "--topic-root", topics.root,
        "--rpc-url", devnet.rpc_url, "--address-book", str(book),
    ]  # fmt: skip
    scd = Certifier(make_client("scd"), topics, chain.domain, chain.c)
    await scd.start()
    log = (tmp_path / "ln.log").open("wb")

    async def spawn() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *args, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )

    proc = await spawn()
    try:
        rec = scd.pod(POD)
        await eventually(
            lambda: (
                [rec.verdicts.get(start + w * WINDOW_S) for w in (0, 1)]
                == ["certified", "certified"]
            ),
            timeout_s=25,
            what="both caught-up windows certified",
        )
        proc.kill()  # SIGKILL: no clean-up of any kind
        await proc.wait()
        before = len(scd.seqs(POD))
        assert scd.seqs(POD) == list(range(before)) and before > 450

        proc = await spawn()
        await eventually(
            lambda: len(scd.seqs(POD)) > before + 1,
            timeout_s=20,
            what="new samples after the restart",
        )
        seqs = scd.seqs(POD)
        assert seqs == list(range(len(seqs)))  # continued: no gap, no reuse
        assert scd.conflicts == 0 and rec.signers == {chain.device(POD).address}
        times = [rec.samples[q].t_s for q in seqs]
        assert times == sorted(times) and len(set(times)) == len(times)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await scd.stop()
        # Leave no durable session behind on the shared broker.
        async with MqttClient(SHARED_MOSQUITTO, f"{prefix}-ln-{POD}", clean_session=True):
            pass
    text = (tmp_path / "ln.log").read_text()
    assert "anchored" in text and "Traceback" not in text


def test_commands_are_registered_and_check_their_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    for command in (["lightnode", "run"], ["lightnode", "csv"], ["concentrator", "run"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
    no_meter = runner.invoke(app, ["lightnode", "run", "--pod", POD])
    assert no_meter.exit_code == 2 and "meter" in no_meter.output
    no_chain = runner.invoke(
        app,
        ["lightnode", "run", "--pod", POD, "--meter-csv", str(METER_CSV)],
        env={"FLEX_RPC_URL": "", "FLEX_HOME": str(tmp_path)},
    )
    assert no_chain.exit_code == 2 and "FLEX_RPC_URL" in no_chain.output
    book = tmp_path / "addresses.json"
    addresses = {name: "0x" + f"{i + 1:02x}" * 20 for i, name in enumerate(CONTRACT_NAMES)}
    AddressBook(31337, addresses, 1, window_seconds=900).save(book)
    wrong_window = runner.invoke(
        app,
        ["lightnode", "run", "--pod", POD, "--meter-csv", str(METER_CSV),
         "--rpc-url", "http://127.0.0.1:1", "--address-book", str(book)],
        env={"FLEX_WINDOW_S": "60"},
    )  # fmt: skip
    assert wrong_window.exit_code == 2 and "900 s" in wrong_window.output
