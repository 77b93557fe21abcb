"""CPU per call of encoding (client) and decoding (node) a task whose function travels by value.

Run as a script: `task` and `helper` are then functions of ``__main__``, which cloudpickle pickles by value (as it
does a user's script), with a few globals: a float, a dict, a list, a module and another function by value.

    uv run python benchmarks/encode_by_value.py            # 20,000 calls: encode_task and decode_task, µs each
"""

from __future__ import annotations

import math
import sys
import time
import timeit

from skyward.blobs import BlobIndex
from skyward.payload import decode_task, encode_task

SCALE = 3.0
OFFSETS = {"a": 1, "b": 2}
NAMES = ["x", "y", "z"]


def helper(v: float) -> float:
    return v * SCALE


def task(x: float, y: float = 2) -> float:
    """A task with a few globals."""
    total = helper(x) + OFFSETS["a"] + len(NAMES)
    return math.sqrt(abs(total)) + y


def per_call(fn: object, number: int) -> float:
    """Microseconds of CPU per call: the best of 3 repeats (CPU time, not wall: steadier on a shared machine)."""
    return min(timeit.repeat(fn, timer=time.process_time, number=number, repeat=3)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    index = BlobIndex()
    encoded = encode_task(task, (1.5,), {}, index)
    assert decode_task(encoded.payload).fn(1.5) == task(1.5)
    rounds = 5
    encode = sorted(
        per_call(lambda: encode_task(task, (1.5,), {}, index), calls // rounds) for _ in range(rounds)
    )
    decode = sorted(per_call(lambda: decode_task(encoded.payload), calls // rounds) for _ in range(rounds))
    print(f"encode_task µs/call: median {encode[rounds // 2]:.1f} (all {[round(v, 1) for v in encode]})")
    print(f"decode_task µs/call: median {decode[rounds // 2]:.1f} (all {[round(v, 1) for v in decode]})")
    print(f"payload: {len(encoded.payload)} bytes")


if __name__ == "__main__":
    main()
