"""Run a Local pool with an S3 volume as a non-root login; `tests/test_volumes_sudo.py` starts it as root.

stdin: one JSON line (uid, gid, home, mount, bucket, url); the S3 keys come in the environment. stdout: one JSON
line, the tasks' results or the start's error. The driver, run through `interpreter_reachable`, drops to the
login, then runs the pool as that login would. Also the login and the sudoers drop-in of these tests
(`sudo_login`), which the sshd lab's test of the same path uses too.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "skyward-volume-test"
SUDOERS = Path("/etc/sudoers.d") / USER


def read_as_login(path: str) -> dict[str, object]:
    """What a task sees: who it runs as, and the volume's files (read, owned, refused writes)."""
    try:
        with open(os.path.join(path, "new.txt"), "w") as f:
            f.write("x")
        write = "written"
    except OSError as exc:
        write = errno.errorcode[exc.errno or 0]
    return {
        "node": os.environ["SKYWARD_NODE"],
        "pid": os.getpid(),
        "uids": list(os.getresuid()),
        "gids": list(os.getresgid()),
        "groups": os.getgroups(),
        "mnt": os.stat("/proc/self/ns/mnt").st_ino,
        "files": sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs),
        "a": open(os.path.join(path, "a.txt")).read(),
        "owner": os.stat(os.path.join(path, "a.txt")).st_uid,
        "write": write,
        "user": os.environ.get("USER"),
    }


def _s3fs_as_seen_by_login(mount: str) -> dict[str, str]:
    """Each s3fs of `mount`: whether this login can read its environment (it must not: the key is there)."""
    seen = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"s3fs" and mount.encode() in argv:
            try:
                open(f"/proc/{entry}/environ", "rb").close()
                seen[entry] = "readable"
            except OSError as exc:
                seen[entry] = errno.errorcode[exc.errno or 0]
    return seen


def interpreter_reachable(argv: list[str]) -> list[str]:
    """`argv` run in a mount namespace of its own where this machine's Python is reachable by any account: when it
    lives under /root (0700), a tmpfs over /root there shows only the interpreter's top directory."""
    top = os.path.realpath(sys.base_prefix)
    if not top.startswith("/root/"):
        return argv
    shown = os.path.join("/root", top.split("/")[2])
    script = (
        'set -e; stage=$(mktemp -d); mount --make-rprivate /; mount --bind "$1" "$stage"; '
        'mount -t tmpfs -o mode=0755 tmpfs /root; mkdir "$1"; mount --move "$stage" "$1"; rmdir "$stage"; '
        'shift; exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", shown, *argv]


@dataclass
class Login:
    """The non-root login of the volume tests."""

    name: str
    uid: int
    gid: int
    home: str


@contextmanager
def sudo_login(name: str = USER) -> Iterator[Login]:
    """A system user allowed passwordless sudo (a sudoers.d drop-in, `SUDOERS`); user, home and drop-in are
    removed at the end. Needs root."""
    try:
        pwd.getpwnam(name)
        raise RuntimeError(f"the user {name} exists already (left by another run?)")
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--create-home", name], check=True)
    try:
        # no password, and not locked ("!" by default): sshd without PAM refuses a locked account's key login
        subprocess.run(["usermod", "--password", "*", name], check=True)
        SUDOERS.write_text(f"{name} ALL=(root) NOPASSWD: ALL\n")
        SUDOERS.chmod(0o440)
        subprocess.run(["visudo", "-cf", str(SUDOERS)], check=True, capture_output=True)
        entry = pwd.getpwnam(name)
        yield Login(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    finally:
        SUDOERS.unlink(missing_ok=True)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def unavailable_reason() -> str | None:
    """Why the non-root login's tests cannot run here, or ``None``."""
    from volume_checks import mount_unavailable_reason

    reason = mount_unavailable_reason()
    if reason is not None:
        return reason
    missing = [
        tool for tool in ("sudo", "useradd", "userdel", "visudo", "unshare") if shutil.which(tool) is None
    ]
    if missing:
        return f"needs {', '.join(missing)} (Debian: apt-get install sudo)"
    # The login runs this checkout's environment: every directory above it must let other accounts through
    # (a clone under a 0700 `mktemp -d` or /root does not; this machine's interpreter under /root is handled by
    # `interpreter_reachable`).
    for target in (Path(sys.prefix), Path(__file__).resolve().parent):
        for directory in (target, *target.parents):
            if not os.stat(directory).st_mode & 0o001:
                return f"{directory} is closed to other accounts, so the test login cannot run this checkout"
    return None


def main() -> None:
    args = json.loads(sys.stdin.readline())
    user = pwd.getpwuid(args["uid"]).pw_name
    os.initgroups(user, args["gid"])
    os.setresgid(args["gid"], args["gid"], args["gid"])
    os.setresuid(args["uid"], args["uid"], args["uid"])
    os.environ.update(HOME=args["home"], USER=user, LOGNAME=user)
    os.chdir(args["home"])
    import skyward as sky

    volume = sky.S3Volume(
        args["mount"], args["bucket"], "datasets/", endpoint_url=args["url"], mode=args.get("mode", "auto")
    )
    try:
        with sky.ComputePool(nodes=2, volume=[volume]) as pool:
            results = pool.broadcast(read_as_login, args["mount"])
            # inside the block: the test looks at the processes, then lets the pool end
            print(json.dumps({"inside": _s3fs_as_seen_by_login(args["mount"])}), flush=True)
            sys.stdin.readline()
        print(json.dumps({"results": results, "pool": pool.pool_id, "client_pid": os.getpid()}))
    except sky.ProvisionError as exc:
        print(json.dumps({"error": str(exc)}))


if __name__ == "__main__":
    main()
