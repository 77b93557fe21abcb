"""The cloud half of an AWS pool's teardown, in a thread that a second Ctrl-C does not stop.

The interpreter waits for the thread before it exits, so an impatient user still leaves no instance running.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from skyward.providers.aws.resources import CleanupFailed, PoolResources

logger = logging.getLogger("skyward.aws")


def release_outliving_interrupts(resources: PoolResources, workdir: Path) -> None:
    """Terminate the pool's instances and delete its group and key pair (`PoolResources.release`), then remove
    `workdir`, in a non-daemon thread: an interrupted wait (a second Ctrl-C) leaves it running, and the
    interpreter waits for it before exiting. Failures are logged (``skyward.aws``, ERROR), not raised: they would only hide the error
    that ended the pool."""
    pool_id = resources.pool_id
    released = threading.Event()
    releasing = threading.Thread(
        target=_release, args=(resources, workdir, released), name=f"skyward-teardown-{pool_id}"
    )
    releasing.start()
    try:
        # An Event, not Thread.join: on Python 3.12 an interrupted join() releases the thread's state
        # lock, after which the interpreter would no longer wait for it at exit. Short waits: a Ctrl-C
        # delivered to another thread is still acted on here within 0.2 s.
        while not released.wait(0.2):
            pass
    except KeyboardInterrupt:
        logger.warning(
            "skyward is still removing the AWS resources of %s; the program exits once they are gone", pool_id
        )
        raise


def _release(resources: PoolResources, workdir: Path, released: threading.Event) -> None:
    try:
        resources.release()
    except CleanupFailed as exc:
        # Loud, with what to do by hand; raising here would only hide the error that ended the pool.
        logger.error("%s", exc)
    except Exception as exc:  # noqa: BLE001
        logger.error("removing the AWS resources of %s failed: %r", resources.pool_id, exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        released.set()
