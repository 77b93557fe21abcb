"""What mutual TLS costs on casty's own round trip: TLS and plain-TCP links to two echo nodes, interleaved.

    uv run python benchmarks/tls_cost.py [--asks 3000] [--in-flight 4000]

Two node processes run skyward's casty node (`skyward.transport.serve`) with an echo handler: one with the pool's
mutual TLS, one with TLS switched off (this benchmark only; skyward itself has no plain mode). One client process
alternates tiny `RunTask` asks between them (same process, same moment: the machine's noise hits both), then sends
bursts of asks in flight. Reported, never asserted; see docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from skyward import transport
from skyward.credentials import node_material


class Echo:
    """A node handler that answers every task at once (no slots, no unpickling)."""

    def run(
        self, task_id: str, payload: bytes, blobs: tuple[bytes, ...], reply: Callable[[bytes], None]
    ) -> None:
        reply(b"ok")

    def put_blob(self, digest: bytes, offset: int, total: int, chunk: bytes) -> bool:
        return True

    def cancel(self, task_ids: tuple[str, ...], stop_running: bool) -> int:
        return 0

    def heartbeat(self) -> bool:
        return True


def _plain() -> None:
    transport._tls = lambda files: None  # type: ignore[assignment,return-value]  # benchmark-only comparison


def node(mode: str, port: int, secret: bytes) -> None:
    if mode == "plain":
        _plain()
    ready = lambda: print("ready", flush=True)
    asyncio.run(transport.serve("n0", port, Echo(), ready, node_material(secret, "n0")))


async def client(ports: dict[str, int], secret: bytes, asks: int, in_flight: int) -> None:
    tls = transport._tls
    links = {}
    for mode, port in ports.items():
        transport._tls = tls
        if mode == "plain":
            _plain()
        links[mode] = transport.NodeLink("n0", port, f"127.0.0.1:{port}", secret)
        await links[mode].connect()
    transport._tls = tls
    payload = b"p" * 200
    times: dict[str, list[float]] = {mode: [] for mode in links}
    for i in range(asks):
        for mode, link in links.items():
            started = time.perf_counter()
            await link.run(f"t{i}", payload)
            times[mode].append(time.perf_counter() - started)
    rates: dict[str, list[float]] = {mode: [] for mode in links}
    for burst in range(3):
        for mode, link in links.items():
            started = time.perf_counter()
            await asyncio.gather(*(link.run(f"b{burst}-{i}", payload) for i in range(in_flight)))
            rates[mode].append(in_flight / (time.perf_counter() - started))
    print(f"{'link':<8}{'p50 us':>9}{'p10 us':>9}{'asks/s in flight (3 bursts)':>32}")
    for mode, samples in times.items():
        samples = sorted(samples[asks // 10 :])  # first tenth: warm-up
        bursts = " / ".join(f"{rate:,.0f}" for rate in rates[mode])
        print(
            f"{mode:<8}{1e6 * statistics.median(samples):>9.1f}{1e6 * samples[len(samples) // 10]:>9.1f}{bursts:>32}"
        )
    for link in links.values():
        await link.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asks", type=int, default=3000, help="sequential asks per link")
    parser.add_argument("--in-flight", type=int, default=4000, help="asks per burst")
    args = parser.parse_args()
    secret = os.urandom(32)
    ports = {"tls": transport.free_port(), "plain": transport.free_port()}
    nodes = [
        subprocess.Popen(
            [sys.executable, __file__, "--node", mode, str(port), secret.hex()],
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode, port in ports.items()
    ]
    try:
        for process in nodes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        asyncio.run(client(ports, secret, args.asks, args.in_flight))
    finally:
        for process in nodes:
            process.kill()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--node"]:
        node(sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4]))
    else:
        main()
