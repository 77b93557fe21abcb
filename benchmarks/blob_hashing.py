"""Hashing speed of large arguments: the candidates for a blob's identity, and skyward's own digest per kind.

    uv run python benchmarks/blob_hashing.py

A blob's identity is hashed over its whole content at every submit (see skyward/blob_kinds.py): this prints GB/s
on one core for 50 MB of float64, best of 5.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import numpy as np
import xxhash

from skyward.blob_kinds import content_digest

MB = 50


def best_seconds(fn: Callable[[], object], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    data = np.random.default_rng(0).standard_normal(MB * 1_000_000 // 8)
    view = memoryview(data).cast("B")
    candidates: dict[str, Callable[[], object]] = {
        "xxh3_128": lambda: xxhash.xxh3_128_digest(view),
        "xxh3_64": lambda: xxhash.xxh3_64_digest(view),
        "sha256": lambda: hashlib.sha256(view).digest(),
        "blake2b": lambda: hashlib.blake2b(view).digest(),
        "md5": lambda: hashlib.md5(view).digest(),
        "memcpy (np.copy), for scale": data.copy,
    }
    print(f"{MB} MB of float64, one core, best of 5")
    for name, fn in candidates.items():
        seconds = best_seconds(fn)
        print(f"  {name:<28} {view.nbytes / seconds / 1e9:6.2f} GB/s  ({seconds * 1e3:6.1f} ms)")

    import pandas as pd

    rows = 1_000_000
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.standard_normal(rows), "c": pd.Categorical(rng.choice(["x", "y"], rows))})
    kinds: dict[str, object] = {
        "numpy C-contiguous": data,
        "numpy Fortran": np.asfortranarray(data.reshape(-1, 1000)),
        "numpy strided view": data.reshape(-1, 1000)[:, ::2],
        "pandas float+categorical": frame,
        "pandas object column": frame.assign(s=np.array([f"v{i}" for i in range(rows)], dtype=object)),
    }
    print("skyward's content_digest")
    for name, obj in kinds.items():
        size = obj.nbytes if isinstance(obj, np.ndarray) else int(obj.memory_usage(deep=False).sum())
        seconds = best_seconds(lambda obj=obj: content_digest(obj, 0))
        print(
            f"  {name:<28} {size / seconds / 1e9:6.2f} GB/s  ({size / 1e6:5.0f} MB in {seconds * 1e3:6.1f} ms)"
        )


if __name__ == "__main__":
    main()
