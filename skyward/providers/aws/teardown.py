"""The cloud half of a pool's teardown, in a thread that a second Ctrl-C does not stop.

The interpreter waits for the thread before it exits, so an impatient user still leaves no instance running.
`run_outliving_interrupts` is shared by every provider that rents machines (AWS, Verda, VastAI).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from skyward.providers.aws.resources import CleanupFailed, PoolResources

logger = logging.getLogger("skyward.aws")


def release_outliving_interrupts(resources: PoolResources, workdir: Path) -> None:
    """Terminate the pool's instances and delete its group and key pair (`PoolResources.release`), then remove
    `workdir` (see `run_outliving_interrupts`)."""
    run_outliving_interrupts(resources.release, resources.pool_id, workdir, "AWS", logger)


def run_outliving_interrupts(
    release: Callable[[], None], pool_id: str, workdir: Path, cloud: str, log: logging.Logger
) -> None:
    """Run `release`, then remove `workdir`, in a non-daemon thread: an interrupted wait (a second Ctrl-C)
    leaves it running, and the interpreter waits for it before exiting. Failures are logged on `log` (ERROR),
    not raised: they would only hide the error that ended the pool."""
    released = threading.Event()
    releasing = threading.Thread(
        target=_release,
        args=(release, pool_id, workdir, cloud, log, released),
        name=f"skyward-teardown-{pool_id}",
    )
    releasing.start()
    try:
        # An Event, not Thread.join: on Python 3.12 an interrupted join() releases the thread's state
        # lock, after which the interpreter would no longer wait for it at exit. Short waits: a Ctrl-C
        # delivered to another thread is still acted on here within 0.2 s.
        while not released.wait(0.2):
            pass
    except KeyboardInterrupt:
        log.warning(
            "skyward is still removing the %s resources of %s; the program exits once they are gone",
            cloud,
            pool_id,
        )
        raise


def _release(
    release: Callable[[], None],
    pool_id: str,
    workdir: Path,
    cloud: str,
    log: logging.Logger,
    released: threading.Event,
) -> None:
    try:
        release()
    except CleanupFailed as exc:
        # Loud, with what to do by hand; raising here would only hide the error that ended the pool.
        log.error("%s", exc)
    except Exception as exc:  # noqa: BLE001
        log.error("removing the %s resources of %s failed: %r", cloud, pool_id, exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        released.set()
