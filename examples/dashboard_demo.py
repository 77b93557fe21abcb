"""A busy pool with its dashboard open: several functions, a few failures and a joblib call in progress.

    uv run python examples/dashboard_demo.py                 # prints the URL; open it, Ctrl-C to stop
    uv run python examples/dashboard_demo.py --screenshot docs/images/dashboard.png

With ``--screenshot`` it takes the picture of docs/dashboard.md with headless chromium (Debian's ``chromium``)
after ``--seconds`` of work, while a joblib call runs, and exits.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import threading
import time

import joblib

import skyward as sky


def load(part: int) -> int:
    time.sleep(random.uniform(0.3, 0.8))
    return part


def fit(params: int) -> float:
    time.sleep(random.uniform(0.5, 2.0))
    if params % 23 == 22:
        raise ValueError(f"the solver did not converge for params #{params}")
    return params * 0.5


def score(fold: int) -> float:
    time.sleep(random.uniform(0.05, 0.2))
    return fold / 10


def keep_busy(pool: sky.ComputePool, stop: threading.Event) -> None:
    step = 0
    while not stop.is_set():
        futures = [pool.submit(load, step)] + [pool.submit(fit, step * 4 + i) for i in range(4)]
        futures += [pool.submit(score, i) for i in range(6)]
        for future in futures:
            future.exception()  # waits; failures are the dashboard's to show
        step += 1


def screenshot(url: str, path: str) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--window-size=1400,1250", "--virtual-time-budget=3000",
             f"--screenshot={path}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--screenshot", help="write a PNG of the page here, then exit")
    parser.add_argument("--seconds", type=float, default=40.0, help="work before the screenshot")
    args = parser.parse_args()
    pool = sky.ComputePool(
        nodes=3, worker=sky.Worker(concurrency=3), plugins=[sky.plugins.joblib()], dashboard=True, prefetch=0
    )
    with pool:
        print("dashboard:", pool.dashboard_url, flush=True)
        stop = threading.Event()
        busy = threading.Thread(target=keep_busy, args=(pool, stop), daemon=True)
        busy.start()
        try:
            deadline = time.monotonic() + (args.seconds if args.screenshot else float("inf"))
            while time.monotonic() < deadline:
                joblib.Parallel(n_jobs=3, batch_size=1)(joblib.delayed(score)(i) for i in range(120))
            if args.screenshot:
                call = threading.Thread(
                    target=lambda: joblib.Parallel(n_jobs=3, batch_size=1)(
                        joblib.delayed(score)(i) for i in range(400)
                    )
                )
                call.start()
                time.sleep(3)
                screenshot(pool.dashboard_url or "", args.screenshot)
                call.join()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            busy.join()


if __name__ == "__main__":
    main()
