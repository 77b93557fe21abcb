"""A lab of a real Slurm cluster (Debian's slurm-wlm and munge) for the Slurm provider's tests.

One munged and one slurmctld run in this network namespace; each compute node is a slurmd in its own network
namespace and UTS namespace (its own hostname), joined to this machine by a veth whose far end sits on a
bridge created here (``10.232.<k>.0/24``, the "cluster network"): the controller is ``.1``, node ``i`` is
``.(10+i)``.
Nodes reach each other and the controller, and nothing else. Configuration, state, spool and logs live in a
temporary directory; ``SLURM_CONF`` points the Slurm commands at it.

Only addresses created here are used. Everything is torn down by `SlurmLab.close`, also after failures.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ssh"))  # the sshd lab's helpers

from sshd_lab import IP, free_port, netns_unavailable_reason

DAEMONS = {name: shutil.which(name) or f"/usr/sbin/{name}" for name in ("munged", "slurmctld", "slurmd")}
COMMANDS = ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")
APT_PACKAGES = ("slurm-wlm", "munge")


def _missing() -> list[str]:
    missing = [name for name, path in DAEMONS.items() if not os.access(path, os.X_OK)]
    return missing + [name for name in COMMANDS if shutil.which(name) is None]


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or ``None``. Installs the Debian packages when missing and apt works."""
    if sys.platform != "linux":
        return "the Slurm lab needs Linux"
    if os.geteuid() != 0:
        return "the Slurm lab starts slurmctld, slurmd and network namespaces, which needs root"
    if _missing() and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *APT_PACKAGES], capture_output=True, env=env, check=False
        )
    missing = _missing()
    if missing:
        return (
            f"Slurm is not installed and could not be installed ({', '.join(missing)} missing; "
            "Debian: apt-get install slurm-wlm munge)"
        )
    return netns_unavailable_reason()


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class ComputeNode:
    """One slurmd: its Slurm name (also its hostname), address and network namespace."""

    name: str
    address: str
    netns: str
    process: subprocess.Popen[bytes]

    def netns_inode(self) -> int:
        """The inode of its network namespace (what ``/proc/self/ns/net`` shows in its processes)."""
        return os.stat(f"/run/netns/{self.netns}").st_ino


@dataclass
class SlurmLab:
    node_count: int = 2
    cpus: int = (
        4  # per node, as slurm.conf declares them (config_overrides: more than the machine has is fine)
    )
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="skyward-slurm-lab-")))
    nodes: dict[str, ComputeNode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._closed = False
        self._daemons: list[subprocess.Popen[bytes]] = []
        self._namespaces: list[str] = []
        atexit.register(self.close)  # a safety net should the session end without its fixture's teardown
        os.chmod(self.root, 0o755)
        tag = os.getpid() % 10000
        self.subnet = f"10.232.{(os.getpid() * 7) % 250 + 1}"
        self.controller_address = f"{self.subnet}.1"
        self.bridge = f"skb{tag}"
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.ctld_port = free_port()
        try:
            self._network(tag)
            self._munged()
            self._write_conf()
            self._slurmctld()
            for index in range(self.node_count):
                self._slurmd(index, tag)
            self.wait_idle()
        except BaseException:
            self.close()
            raise

    @property
    def env(self) -> dict[str, str]:
        """The variables Slurm commands need to reach this lab's cluster."""
        return {"SLURM_CONF": str(self.conf)}

    # --- start ---------------------------------------------------------------------------------------------

    def _network(self, tag: int) -> None:
        assert IP is not None
        _run(IP, "link", "add", self.bridge, "type", "bridge")
        _run(IP, "addr", "add", f"{self.controller_address}/24", "dev", self.bridge)
        _run(IP, "link", "set", self.bridge, "up")
        for index in range(self.node_count):
            netns, host_side, ns_side = f"skyward-s{tag}{index}", f"sbh{tag}{index}", f"sbn{tag}{index}"
            _run(IP, "netns", "add", netns)
            self._namespaces.append(netns)
            _run(IP, "link", "add", host_side, "type", "veth", "peer", "name", ns_side)
            _run(IP, "link", "set", host_side, "master", self.bridge)
            _run(IP, "link", "set", host_side, "up")
            _run(IP, "link", "set", ns_side, "netns", netns)
            _run(IP, "-n", netns, "addr", "add", f"{self.subnet}.{10 + index}/24", "dev", ns_side)
            _run(IP, "-n", netns, "link", "set", ns_side, "up")
            _run(IP, "-n", netns, "link", "set", "lo", "up")

    def _daemon(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._daemons.append(process)
        return process

    def _munged(self) -> None:
        folder = self.root / "munge"
        folder.mkdir(mode=0o700)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._daemon(
            [
                DAEMONS["munged"],
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={folder / 'munged.pid'}",
                f"--log-file={folder / 'munged.log'}",
                f"--seed-file={folder / 'munged.seed'}",
            ],
            folder / "munged.out",
        )
        _wait(
            lambda: self.munge_socket.exists(),
            10,
            f"munged did not start: {self._log(folder / 'munged.log')}",
        )

    def _write_conf(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir()
        names = ",".join(self.node_name(i) for i in range(self.node_count))
        host = socket.gethostname().split(".")[0]
        lines = [
            "ClusterName=skylab",
            f"SlurmctldHost={host}({self.controller_address})",
            f"SlurmctldPort={self.ctld_port}",
            "SlurmdPort=6818",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool' / '%n'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'spool' / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd-%n.log'}",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SlurmdParameters=config_overrides",  # the nodes declare more than this machine has
            "ReturnToService=2",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            "MinJobAge=5",
            "SchedulerParameters=sched_interval=2",
            "TreeWidth=64",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            *(
                f"NodeName={self.node_name(i)} NodeAddr={self.subnet}.{10 + i} CPUs={self.cpus} "
                "RealMemory=2000 Feature=lab State=UNKNOWN"
                for i in range(self.node_count)
            ),
            f"PartitionName=lab Nodes={names} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))

    def _slurmctld(self) -> None:
        self._daemon(
            [DAEMONS["slurmctld"], "-D", "-i", "-f", str(self.conf)], self.root / "log" / "slurmctld.out"
        )

        def answers() -> bool:
            return self.command("scontrol", "ping", check=False).returncode == 0

        _wait(answers, 30, f"slurmctld did not answer: {self._log(self.root / 'log' / 'slurmctld.log')}")

    def _slurmd(self, index: int, tag: int) -> None:
        name, netns = self.node_name(index), f"skyward-s{tag}{index}"
        # Its own UTS namespace: `hostname` in jobs prints the node's name, as on a real cluster.
        script = f"hostname {name} && exec {DAEMONS['slurmd']} -D -N {name} -f {self.conf}"
        # nsenter, not `ip netns exec`: that mounts a fresh /sys, without the cgroup mounts slurmd looks for.
        argv = ["nsenter", f"--net=/run/netns/{netns}", "unshare", "--uts", "sh", "-c", script]
        (self.root / "spool" / name).mkdir()
        process = self._daemon(argv, self.root / "log" / f"slurmd-{name}.out")
        self.nodes[name] = ComputeNode(name, f"{self.subnet}.{10 + index}", netns, process)

    @staticmethod
    def node_name(index: int) -> str:
        return f"sky{index + 1}"

    # --- use -----------------------------------------------------------------------------------------------

    def command(
        self, *argv: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command against this lab."""
        result = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, **self.env}, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def node_states(self) -> dict[str, str]:
        out = self.command("sinfo", "-h", "-N", "-o", "%N %t").stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until every node is up and free (after start, or after a test set one DOWN)."""

        def idle() -> bool:
            return set(self.node_states().values()) == {"idle"}

        _wait(idle, timeout, lambda: f"nodes not idle: {self.node_states()}\n{self.logs()}")

    def resume_all(self) -> None:
        """Cancel every job and bring DOWN or DRAINED nodes back, for the next test."""
        self.command("scancel", "--full", "-u", "root", check=False)
        for name, state in self.node_states().items():
            if state.rstrip("*~#") not in ("idle", "alloc", "mix", "comp"):
                self.command("scontrol", "update", f"nodename={name}", "state=resume", check=False)
        self.wait_idle()

    def jobs(self) -> list[str]:
        """The ids of the lab's jobs that are not finished."""
        out = self.command(
            "squeue", "-h", "-o", "%i", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED"
        ).stdout
        return out.split()

    def jobs_after_close(self, timeout: float = 30) -> list[str]:
        """The unfinished jobs once those ending have ended (a cancelled job is COMPLETING while its steps
        end; a relinquished one a moment later): what a test asserts is empty after a pool closed."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.command("squeue", "-h", "-o", "%i").stdout.split()
            if not jobs or time.monotonic() >= deadline:
                return jobs
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{self._log(p)}" for p in sorted((self.root / "log").glob("*.log")))

    @staticmethod
    def _log(path: Path, lines: int = 30) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- teardown ------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.conf.exists() and self._daemons:
            try:
                self.command("scancel", "--full", "-u", "root", check=False, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for process in reversed(self._daemons):  # slurmds (and their job steps' groups) first, munged last
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for netns in self._namespaces:  # job steps (slurmstepd and its tasks) outlive their slurmd
            pids = subprocess.run(
                [IP or "ip", "netns", "pids", netns], capture_output=True, text=True, check=False
            )
            for pid in pids.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run([IP or "ip", "netns", "del", netns], capture_output=True, check=False)
        subprocess.run([IP or "ip", "link", "del", self.bridge], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _wait(condition, timeout: float, message) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise RuntimeError(message() if callable(message) else message)
