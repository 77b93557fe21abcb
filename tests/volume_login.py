"""Run a Local pool with an S3 volume as a non-root login; `tests/test_volumes_sudo.py` starts it as root.

stdin: one JSON line (uid, gid, home, mount, bucket, url); the S3 keys come in the environment. stdout: one JSON
line, the tasks' results or the start's error. The driver makes the interpreter reachable for the login (this
machine's Python may live under /root, 0700: a tmpfs over /root shows only it, in a mount namespace of the
driver's own), drops to the login, then runs the pool as that login would.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import subprocess
import sys
import tempfile


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


def _reach_the_interpreter() -> None:
    top = os.path.realpath(sys.base_prefix)
    if not top.startswith("/root/"):
        return
    shown = os.path.join("/root", top.split("/")[2])
    os.unshare(os.CLONE_NEWNS)
    stage = tempfile.mkdtemp(prefix="skyward-login-python-")
    for command in (
        ["mount", "--make-rprivate", "/"],
        ["mount", "--bind", shown, stage],
        ["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/root"],
        ["mkdir", shown],
        ["mount", "--move", stage, shown],
    ):
        subprocess.run(command, check=True)
    os.rmdir(stage)


def main() -> None:
    args = json.loads(sys.stdin.readline())
    _reach_the_interpreter()
    user = pwd.getpwuid(args["uid"]).pw_name
    os.initgroups(user, args["gid"])
    os.setresgid(args["gid"], args["gid"], args["gid"])
    os.setresuid(args["uid"], args["uid"], args["uid"])
    os.environ.update(HOME=args["home"], USER=user, LOGNAME=user)
    os.chdir(args["home"])
    import skyward as sky

    volume = sky.S3Volume(args["mount"], args["bucket"], "datasets/", endpoint_url=args["url"])
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
