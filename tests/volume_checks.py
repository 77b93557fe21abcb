"""What the volume tests look for on this machine: can it mount, and what did a pool leave behind."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile


def mount_unavailable_reason() -> str | None:
    """Why this machine cannot run the mount tests, or ``None``."""
    if os.geteuid() != 0:
        return "S3 volumes mount in the worker's own mount namespace, which needs root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    s3fs = shutil.which("s3fs")
    if s3fs is None or subprocess.run([s3fs, "--version"], capture_output=True, check=False).returncode:
        return "s3fs is not installed (Debian: apt-get install s3fs; .ci/run installs it)"
    return None


def s3fs_processes(marker: str) -> list[int]:
    """s3fs processes whose command line holds `marker` (a test's mount path or bucket)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"s3fs" and any(marker.encode() in a for a in argv):
            found.append(int(entry))
    return found


def visible_mounts(marker: str) -> list[str]:
    """Lines of this process's mountinfo that mention `marker`."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if marker in line]


def volume_workdirs() -> set[str]:
    """The agents' private work directories (s3fs logs) in the temporary directory."""
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "skyward-volumes-*")))
