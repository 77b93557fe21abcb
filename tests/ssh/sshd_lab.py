"""A lab of real OpenSSH servers for the SSH provider's tests.

Hosts are sshd processes we start ourselves (own host keys, own config, ``authorized_keys`` from a key generated
here), each with its own ``HOME`` (sshd's ``SetEnv``) so that each host has its own ``~/.skyward``:

- *isolated* hosts live in network namespaces joined to this machine by a veth pair with a /30 of
  10.231.0.0/16 and no other route: they reach the client and nothing else (no package index), which is the
  offline path;
- a *loopback* host listens on 127.0.0.1 in this namespace and reaches what this machine reaches.

Only addresses created here are used. Everything is torn down by `Lab.close`, also after failures.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from proc_utils import process_exists, wait_gone  # noqa: F401 - re-exported for the SSH tests

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
IP = shutil.which("ip")


def node_python() -> str:
    """The real interpreter behind this test run's (virtual environment) Python: what nodes run."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(candidate.resolve()) if candidate.exists() else os.path.realpath(sys.executable)


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or ``None``."""
    if sys.platform != "linux":
        return "the sshd lab needs Linux"
    if SSHD is None:
        return "OpenSSH server (sshd) is not installed (Debian: apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed (Debian: apt-get install openssh-client)"
    if os.geteuid() != 0:
        return "the sshd lab starts sshd and network namespaces, which needs root"
    return None


def netns_unavailable_reason() -> str | None:
    if IP is None:
        return "iproute2 (ip) is not installed"
    probe = f"skyprobe{os.getpid()}"
    result = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"cannot create network namespaces here: {result.stderr.strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True, check=False)
    return None


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Host:
    """One sshd: how to reach it and where its home is."""

    name: str
    address: str
    port: int
    home: Path
    netns: str | None
    process: subprocess.Popen[bytes]
    log: Path
    host_key_pub: str

    @property
    def spec(self) -> str:
        return f"root@{self.address}:{self.port}"

    def known_hosts_line(self) -> str:
        where = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{where} {self.host_key_pub}"

    def netns_inode(self) -> int:
        """The inode of the host's network namespace (what ``/proc/self/ns/net`` shows in its processes)."""
        if self.netns is None:
            return os.stat("/proc/self/ns/net").st_ino
        return os.stat(f"/run/netns/{self.netns}").st_ino


@dataclass
class Lab:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="skyward-sshd-lab-")))
    hosts: dict[str, Host] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    _links: int = 0

    def __post_init__(self) -> None:
        self._closed = False
        atexit.register(self.close)  # a safety net should the session end without its fixture's teardown
        os.chmod(self.root, 0o755)
        self.client_key = self.root / "client_key"
        self.stranger_key = self.root / "stranger_key"  # a key no host authorizes
        for key in (self.client_key, self.stranger_key):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", str(key))
        self.authorized_keys = self.root / "authorized_keys"
        shutil.copy(f"{self.client_key}.pub", self.authorized_keys)
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("")
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # sshd's privilege separation dir

    # --- hosts ---------------------------------------------------------------------------------------------

    def add_isolated_host(
        self,
        name: str,
        home: Path | None = None,
        port: int = 22,
        env: dict[str, str] | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Host:
        """An sshd alone in a network namespace, reachable from here only through its veth link.

        `env`: further variables of the login's sessions (sshd's ``SetEnv``), e.g. a ``PATH`` of the test's.
        `wrap`: what sshd's command line becomes (e.g. run in a mount namespace prepared for a non-root login).
        """
        netns, address = self._namespace()
        return self._start(name, address, port, home, netns, env, wrap)

    def add_sshd_in(self, existing: Host, name: str, home: Path, port: int) -> Host:
        """Another sshd in `existing`'s network namespace (another "host" on the same address)."""
        return self._start(name, existing.address, port, home, existing.netns)

    def add_loopback_host(self, name: str, home: Path | None = None) -> Host:
        return self._start(name, "127.0.0.1", free_port(), home, None)

    def _namespace(self) -> tuple[str, str]:
        assert IP is not None
        self._links += 1
        netns, tag, third = self._free_namespace()
        self.namespaces.append(netns)
        host_side, ns_side = f"skh{tag}", f"skn{tag}"
        _run(IP, "link", "add", host_side, "type", "veth", "peer", "name", ns_side)
        _run(IP, "link", "set", ns_side, "netns", netns)
        _run(IP, "addr", "add", f"10.231.{third}.1/30", "dev", host_side)
        _run(IP, "link", "set", host_side, "up")
        _run(IP, "-n", netns, "addr", "add", f"10.231.{third}.2/30", "dev", ns_side)
        _run(IP, "-n", netns, "link", "set", ns_side, "up")
        _run(IP, "-n", netns, "link", "set", "lo", "up")  # workers bind 127.0.0.1 there
        return netns, f"10.231.{third}.2"

    def _free_namespace(self) -> tuple[str, str, int]:
        """A new namespace `skyward-t<tag>` and a /30 in 10.231.0.0/16 that no other lab on this machine uses:
        sessions run side by side (and a killed one may leave its namespace), so names and subnets are drawn at
        random and taken only when free (interface names allow 15 characters: ``skh`` + a 5-digit tag)."""
        assert IP is not None
        for _ in range(100):
            tag, third = f"{random.randrange(100000):05d}", random.randrange(1, 251)
            used = subprocess.run(
                [IP, "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False
            ).stdout
            if f" 10.231.{third}." in used:
                continue
            netns = f"skyward-t{tag}"
            if subprocess.run([IP, "netns", "add", netns], capture_output=True, check=False).returncode == 0:
                return netns, tag, third
        raise RuntimeError("no free network namespace name or 10.231.x.0/30 subnet after 100 tries")

    def _start(
        self,
        name: str,
        address: str,
        port: int,
        home: Path | None,
        netns: str | None,
        env: dict[str, str] | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Host:
        assert SSHD is not None
        folder = self.root / name
        folder.mkdir()
        home = home or (folder / "home")
        home.mkdir(parents=True, exist_ok=True)
        host_key = folder / "host_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(host_key))
        config = folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {address}:{port}",
                    f"HostKey {host_key}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    f"PidFile {folder / 'sshd.pid'}",
                    "StrictModes no",  # the lab lives under /tmp, which is world-writable
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "AllowTcpForwarding local",
                    "X11Forwarding no",
                    "MaxSessions 50",
                    "MaxStartups 50",
                    " ".join(["SetEnv", f"HOME={home}", *(f"{k}={v}" for k, v in (env or {}).items())]),
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        log = folder / "sshd.log"
        argv = [SSHD, "-D", "-e", "-f", str(config)]
        if netns is not None:
            argv = [IP or "ip", "netns", "exec", netns, *argv]
        if wrap is not None:
            argv = wrap(argv)
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        host = Host(
            name, address, port, home, netns, process, log, (folder / "host_key.pub").read_text().strip()
        )
        self.hosts[name] = host
        _wait_listening(host)
        with open(self.known_hosts, "a") as f:
            f.write(host.known_hosts_line() + "\n")
        return host

    # --- teardown ------------------------------------------------------------------------------------------

    def lab_processes(self) -> list[int]:
        """Processes started under the lab (workers and installs run from the hosts' homes)."""
        found = []
        marker = str(self.root).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if marker in cmdline and b"sshd" not in cmdline.split(b"\0")[0]:
                found.append(int(entry))
        return found

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for pid in self.lab_processes():  # anything a failed test left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for host in self.hosts.values():
            try:
                os.killpg(host.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for host in self.hosts.values():
            try:
                host.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(host.process.pid, signal.SIGKILL)
                host.process.wait()
        for netns in self.namespaces:
            # Deleting the namespace deletes its veth end, and with it the peer on this side.
            subprocess.run([IP or "ip", "netns", "del", netns], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_listening(host: Host, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise RuntimeError(f"sshd {host.name} exited at start:\n{host.log.read_text()}")
        try:
            with socket.create_connection((host.address, host.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(
        f"sshd {host.name} is not listening on {host.address}:{host.port}:\n{host.log.read_text()}"
    )


def listening_addresses(port: int, pid: int | None = None) -> set[str]:
    """IPv4/IPv6 addresses with a TCP listener on `port`, in the network namespace of `pid` (default: ours)."""
    found = set()
    base = f"/proc/{pid}/net" if pid else "/proc/net"
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            with open(f"{base}/{table}") as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            address, local_port = fields[1].split(":")
            if int(local_port, 16) != port or fields[3] != "0A":  # 0A: LISTEN
                continue
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
            else:
                raw = bytes.fromhex(address)
                found.add(
                    socket.inet_ntop(socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
                )
    return found
