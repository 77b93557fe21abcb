"""Volumes on a node whose login is not root (``ubuntu`` on EC2): mount as root through passwordless sudo, then
serve as the login.

Mounting in a mount namespace of the agent's own needs root. An agent that is not root and has volumes to mount
relays itself through ``sudo -n``:

- the agent the provider started (the login user) checks ``sudo -n true`` (else it exits saying so), starts
  ``sudo -n python -I -m skyward.volumes.sudo`` and writes it, on the pipe that is that process's stdin, one line
  with its environment, ``sys.path``, working directory and pid, then the configuration line it read itself
  (credentials included): nothing on a command line, nothing in a file. It then copies its own stdin there until
  the client closes it (the EOF that stops the agent) and exits as the root side exits.
- the root side (`main`) enters a private mount namespace and mounts the volumes (s3fs as root, the files shown
  as the login's: ``allow_other,uid=,gid=,umask=0077``), then forks: the child drops to the login (its groups,
  gid, uid; real, effective and saved) and serves tasks as the agent does, announcing the relay's pid (the
  process the provider started and stops); the parent stays root only to wait for it, then unmounts, stops
  s3fs and removes its work directory, whichever way the child ended (a client's ``kill`` of the agent's process
  group reaches the relay and the child, which are the login's, not the root side).

Why re-execute the agent rather than a small privileged mount helper: the mount must live in the agent's own
namespace (two agents on one machine must not collide), and only root can enter one; an unprivileged agent can
neither join a namespace root made nor unmount there afterwards. So root makes the namespace, mounts, and hands
it, by forking, to the agent it becomes.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
from typing import IO, Any, NoReturn

_PR_SET_DUMPABLE = 4


def relay_through_sudo(config_line: str) -> NoReturn:
    """Run the agent of `config_line` as root through ``sudo -n`` (see the module's docstring); exit as it does."""
    sudo = shutil.which("sudo")
    check = (
        subprocess.run([sudo, "-n", "true"], capture_output=True, text=True, check=False, timeout=60)
        if sudo is not None
        else None
    )
    if check is None or check.returncode != 0:
        why = "sudo is not installed" if check is None else (check.stderr.strip() or "`sudo -n true` fails")
        user = pwd.getpwuid(os.getuid()).pw_name
        sys.exit(
            f"skyward worker: this node cannot mount S3 volumes: its login {user!r} is not root and has no "
            f"passwordless sudo ({why}). Log in as root, or let {user!r} run sudo without a password (as stock "
            "cloud images do for their default login)."
        )
    assert sudo is not None
    preamble = {"env": dict(os.environ), "path": sys.path, "cwd": os.getcwd(), "pid": os.getpid()}
    # stdout and stderr: the agent's own, so the ready line and the task output reach the client unchanged
    root = subprocess.Popen([sudo, "-n", "--", sys.executable, "-I", "-m", __name__], stdin=subprocess.PIPE)
    assert root.stdin is not None
    try:
        root.stdin.write((json.dumps(preamble) + "\n" + config_line).encode())
        root.stdin.flush()
    except BrokenPipeError:
        pass  # it exited already: its status says why
    threading.Thread(target=_copy_stdin, args=(root.stdin,), daemon=True, name="stdin-relay").start()
    status = root.wait()
    sys.stdout.flush()
    os._exit(status if status >= 0 else 128 - status)


def _copy_stdin(to: IO[bytes]) -> None:
    """Forward what the client writes on the agent's stdin, then its EOF (the client is gone: the agent stops)."""
    try:
        for line in sys.stdin:
            to.write(line.encode())
            to.flush()
    except (BrokenPipeError, ValueError):
        pass
    finally:
        try:
            to.close()
        except BrokenPipeError:
            pass


def main() -> NoReturn:
    """The root side: ``sudo -n python -I -m skyward.volumes.sudo``, fed by `relay_through_sudo` on stdin."""
    from skyward.agent_config import AgentConfig, AgentConfigError
    from skyward.volumes.client import VolumeError
    from skyward.volumes.mount import mount_volumes, node_report

    if os.geteuid() != 0 or "SUDO_UID" not in os.environ:
        sys.exit("skyward.volumes.sudo: the worker runs this through sudo, for a login that is not root")
    uid, gid = int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"])
    try:
        preamble: dict[str, Any] = json.loads(sys.stdin.readline())
        config = AgentConfig.decode(sys.stdin.readline())
    except (ValueError, AgentConfigError) as exc:
        sys.exit(f"skyward worker: {exc}")
    try:
        volumes = mount_volumes(config.volumes, node_report, owner=(uid, gid))
    except (VolumeError, OSError) as exc:
        sys.exit(f"skyward worker: {exc}")
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        try:
            _become(uid, gid, preamble)
            from skyward.worker.__main__ import serve

            serve(config, None, announced_pid=int(preamble["pid"]))  # exits the process
        except BaseException as exc:  # noqa: BLE001 - said, then the child exits: the parent cleans up
            # No handler on a node: logging's last resort writes it to stderr, which the client forwards.
            logging.getLogger("skyward.worker").error("skyward worker: %r", exc)
        finally:
            os._exit(1)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # the agent decides; cleanup comes after it
        signal.signal(signum, lambda signum, _frame: _forward(child, signum))
    _, status = os.waitpid(child, 0)
    volumes.release()  # root's part: unmount, stop s3fs, remove the work directory
    sys.stdout.flush()
    os._exit(os.waitstatus_to_exitcode(status) % 256)


def _forward(child: int, signum: int) -> None:
    try:
        os.kill(child, signum)
    except ProcessLookupError:
        pass  # it has just ended


def _become(uid: int, gid: int, preamble: dict[str, Any]) -> None:
    """Drop root for good: the login's groups, gid and uid (real, effective, saved), then its environment, working
    directory and import path (added only now, so root never imports from the login's directories)."""
    os.initgroups(pwd.getpwuid(uid).pw_name, gid)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise RuntimeError("could not drop root")
    # Changing uid made the process undumpable (its /proc entries root's): the login may inspect its own agent.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    os.environ.clear()
    os.environ.update(preamble["env"])
    try:
        os.chdir(preamble["cwd"])
    except OSError:
        os.chdir(pwd.getpwuid(uid).pw_dir)
    sys.path.extend(p for p in preamble["path"] if p not in sys.path)


if __name__ == "__main__":
    main()
