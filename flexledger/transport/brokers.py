"""MQTT brokers we start ourselves: an embedded one for the one-machine default, and a private
Mosquitto for tests that need to take a broker down and bring it back.

``EmbeddedBroker`` runs amqtt in this process's event loop: no binary to install, good for
``flexledger demo`` and tests (about 5k messages/s when it shares the loop with its clients).
``MosquittoProcess`` runs a real Mosquitto on its own port with a throw-away configuration, so an
outage test can stop and restart it on the same port without touching the machine's broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedBroker", "MosquittoProcess", "free_port"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _wait_listening(host: str, port: int, timeout_s: float, alive: Any = None) -> None:
    """Wait until ``host:port`` accepts TCP connections; ``alive()`` false aborts early."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if alive is not None and not alive():
                raise RuntimeError(f"broker on {host}:{port} exited while starting") from None
            if loop.time() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout_s} s"
                ) from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


class EmbeddedBroker:
    """An amqtt MQTT 3.1.1 broker on ``host`` and ``port`` (0: a free port), anonymous access.

    ``async with EmbeddedBroker() as broker: broker.url`` → ``mqtt://127.0.0.1:PORT``.
    amqtt is imported only here: it belongs to the test and embedded-demo installs, not to a
    Light Node's.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        """The amqtt configuration (TOOLCHAIN.md): one TCP listener, anonymous clients."""
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

    async def start(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "the embedded MQTT broker needs amqtt (pip install 'flexledger[test]'), "
                "or set FLEX_MQTT_URL to an existing broker"
            ) from exc
        self._broker = Broker(self.config())
        await self._broker.start()
        log.info("embedded MQTT broker listening on %s", self.url)

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class MosquittoProcess:
    """A private Mosquitto on ``127.0.0.1`` and a free (or given) port, stoppable and restartable
    on the same port.

    ``persistence=True`` keeps durable sessions and queued QoS 1 messages across a restart
    (Mosquitto saves them on a clean stop), as a production broker would be configured.
    ``options``: more ``mosquitto.conf`` lines, e.g. ``{"max_queued_messages": "10000"}``.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        binary: str | None = None,
        persistence: bool = False,
        options: dict[str, str] | None = None,
    ) -> None:
        found = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(found).exists():
            raise FileNotFoundError(f"mosquitto binary not found (looked for {found})")
        self.binary = found
        self.host = host
        self.port = port or free_port(host)
        self.persistence = persistence
        self.options = dict(options or {})
        self._dir = Path(tempfile.mkdtemp(prefix="flex-mosquitto-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # What a deployment should set too: without it, a small message that follows
            # another to the same client waits ~40 ms (Nagle + delayed ACK).
            "set_tcp_nodelay true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self._dir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        lines += [f"{key} {value}" for key, value in self.options.items()]
        if os.geteuid() == 0:
            # As root, Mosquitto drops to the 'mosquitto' user, which cannot write our temp dir.
            lines.append("user root")
        conf = self._dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    async def start(self, timeout_s: float = 5.0) -> None:
        """Start (again) on the same port and wait until it accepts connections."""
        if self.running:
            return
        conf = self._write_config()
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
            )
        proc = self._proc
        try:
            await _wait_listening(
                self.host, self.port, timeout_s, alive=lambda: proc.poll() is None
            )
        except (RuntimeError, TimeoutError) as exc:
            await self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"mosquitto on port {self.port} did not start: {exc}\n{tail}"
            ) from exc
        log.info("private mosquitto listening on %s (pid %d)", self.url, proc.pid)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop it (SIGTERM, so that it saves persistent sessions; SIGKILL if it hangs)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout_s)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def kill(self) -> None:
        """Stop it abruptly (SIGKILL): a crash, nothing saved."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def restart(self, down_s: float = 0.0) -> None:
        await self.stop()
        if down_s:
            await asyncio.sleep(down_s)
        await self.start()

    async def __aenter__(self) -> MosquittoProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
