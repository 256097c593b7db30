"""A local devnet (anvil) that manages itself, and a connection to any EVM JSON-RPC endpoint.

    with Devnet(state_path=Path(".flexledger/chain.json")) as devnet:
        w3 = devnet.web3()

`Devnet` finds the anvil binary (the pinned npm package, else `anvil` on PATH), starts it on
127.0.0.1 with port 0 so the kernel picks a free port, reads the port from anvil's
`Listening on 127.0.0.1:NNNNN` line, waits until `web3_clientVersion` answers, and in
`close()` (the context manager's exit) terminates it and waits. With `state_path` anvil loads
the chain from that file if it exists and writes it back on exit, so a restart keeps the chain.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from web3 import HTTPProvider, Web3

__all__ = [
    "CHAIN_ID",
    "Devnet",
    "DevnetError",
    "connect",
    "find_anvil",
    "http_web3",
    "rpc_url_from_env",
]

log = logging.getLogger(__name__)

CHAIN_ID = 31337
RPC_ENV = "FLEX_RPC_URL"
_ROOT = Path(__file__).resolve().parent.parent
_NPM_ANVIL = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")


class DevnetError(RuntimeError):
    """anvil is missing, did not start, or did not answer."""


def find_anvil(root: Path | None = None) -> Path:
    """The anvil binary: the pinned npm package under `root` (the repo), else `anvil` on PATH."""
    candidates = [(root or _ROOT) / _NPM_ANVIL, Path.cwd() / _NPM_ANVIL]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise DevnetError(
        f"anvil not found at {candidates[0]} nor on PATH; run `npm ci` in the repository"
    )


class Devnet:
    """One anvil process on 127.0.0.1, chain id 31337.

    Args:
        state_path: load the chain from this file if it exists, and dump it there on exit.
        port: 0 (default) for a free port picked by the kernel.
        block_time: seconds between blocks; None mines one block per transaction.
        accounts: number of pre-funded anvil accounts (flexledger funds its own keys).
        extra_args: more anvil arguments.
        start_timeout: seconds to wait for the RPC to answer.
    """

    def __init__(
        self,
        state_path: Path | str | None = None,
        *,
        port: int = 0,
        block_time: float | None = None,
        accounts: int = 1,
        extra_args: Sequence[str] = (),
        start_timeout: float = 20.0,
        anvil: Path | None = None,
    ) -> None:
        self.state_path = Path(state_path) if state_path is not None else None
        self.port = port
        self.block_time = block_time
        self.accounts = accounts
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.anvil = anvil or find_anvil()
        self._proc: subprocess.Popen[bytes] | None = None
        self._rpc_url: str | None = None
        self._output: list[str] = []
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        """The explicit anvil argument list."""
        cmd = [
            str(self.anvil),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(CHAIN_ID),
            "--accounts",
            str(self.accounts),
        ]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(self.state_path)]
        return cmd + self.extra_args

    def start(self) -> Devnet:
        if self._proc is not None:
            return self
        cmd = self.command()
        log.debug("starting %s", " ".join(cmd))
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._proc = proc
        try:
            self._rpc_url = self._wait_listening(proc)
            self._wait_rpc()
        except BaseException:
            self.close()
            raise
        log.info("anvil listening on %s (pid %d)", self._rpc_url, proc.pid)
        return self

    def _wait_listening(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        found: list[str] = []
        ready = threading.Event()

        def read(stream: IO[bytes]) -> None:
            # Keep draining anvil's output for its whole life so that it never blocks on a
            # full pipe; the last lines are kept for error messages. Line by line until it
            # listens, then in chunks: anvil logs every RPC call, and a line loop here would
            # take the GIL from the process's real work thousands of times a second.
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                self._output.append(line.rstrip())
                del self._output[:-50]
                match = _LISTENING.search(line)
                if match:
                    found.append(f"http://{match.group(1)}:{match.group(2)}")
                    ready.set()
                    break
            tail = b""
            while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
                tail = (tail + chunk)[-4096:]
                self._output[:] = tail.decode("utf-8", "replace").splitlines()[-50:]
            ready.set()

        self._reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
        self._reader.start()
        if not ready.wait(self.start_timeout) or not found:
            raise DevnetError("anvil did not start:\n" + "\n".join(self._output[-20:]))
        return found[0]

    def _wait_rpc(self) -> None:
        w3 = self.web3()
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                w3.provider.make_request("web3_clientVersion", [])  # type: ignore[arg-type]
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise DevnetError(f"anvil at {self._rpc_url} does not answer: {exc}") from exc
                if self._proc is not None and self._proc.poll() is not None:
                    raise DevnetError("anvil exited:\n" + "\n".join(self._output[-20:])) from exc
                time.sleep(0.02)

    def close(self, timeout: float = 10.0) -> None:
        """Terminate anvil (SIGTERM, so that it dumps `state_path`) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            if self._reader is not None:
                self._reader.join(1.0)

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ access

    @property
    def rpc_url(self) -> str:
        if self._rpc_url is None or self._proc is None:
            raise DevnetError("devnet not running")
        return self._rpc_url

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def web3(self, timeout: float = 30.0) -> Web3:
        return http_web3(self.rpc_url, timeout)


def http_web3(url: str, timeout: float = 30.0) -> Web3:
    """A Web3 over HTTP that asks the chain its id once: web3's request validation reads
    ``eth_chainId`` before every call and transaction, one extra round trip each (a sixth of
    the demo's RPC time) for a value that never changes."""
    provider = HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        cache_allowed_requests=True,
        cacheable_requests={"eth_chainId", "net_version", "web3_clientVersion"},
    )
    return Web3(provider)


def rpc_url_from_env(default: str | None = None) -> str | None:
    """`FLEX_RPC_URL`, or `default`."""
    return os.environ.get(RPC_ENV) or default


def connect(url: str | None = None, *, timeout: float = 30.0, check: bool = True) -> Web3:
    """A Web3 on `url`, or on `FLEX_RPC_URL` when `url` is None (any EVM JSON-RPC endpoint).

    With `check`, raises DevnetError when the endpoint does not answer.
    """
    url = url or rpc_url_from_env()
    if not url:
        raise DevnetError(f"no RPC endpoint: pass one or set {RPC_ENV}")
    w3 = http_web3(url, timeout)
    if check:
        try:
            w3.provider.make_request("web3_clientVersion", [])  # type: ignore[arg-type]
        except Exception as exc:
            raise DevnetError(f"{url} does not answer: {exc}") from exc
    return w3
