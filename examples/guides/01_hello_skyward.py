"""Hello, skyward: run a function on two nodes and see where it ran.

    uv run python examples/guides/01_hello_skyward.py
    SKYWARD_EXAMPLE_SMALL=1 uv run python examples/guides/01_hello_skyward.py    # fewer calls

With no provider, nodes are worker processes on this machine (`sky.Local()`). The same code runs on machines
you have with `provider=sky.SSH(hosts=[...])`.
"""

import os
import socket

import skyward as sky


@sky.compute
def greet(name: str) -> str:
    """Runs on a node: it says which one."""
    return f"hello {name} from {os.environ['SKYWARD_NODE']} (pid {os.getpid()} on {socket.gethostname()})"


@sky.compute
def square(x: int) -> int:
    return x * x


def main() -> None:
    calls = 4 if os.environ.get("SKYWARD_EXAMPLE_SMALL") == "1" else 8
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        print(greet("world") >> pool)  # run one call, wait for its result
        print(greet("everyone") @ pool)  # once on every node
        print(sky.gather(*(square(i) for i in range(calls))) >> pool)  # in parallel, results in order
        future = square(12) > pool  # a concurrent.futures.Future
        print(f"{future.result()=}")
        print(f"client pid {os.getpid()}; {pool.total_slots} slots on nodes {[n.pid for n in pool.nodes]}")


if __name__ == "__main__":
    main()
