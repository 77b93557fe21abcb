"""``skyward doctor HOST...`` and ``skyward prewarm HOST...``: SSH hosts, before a pool needs them.

``doctor`` reaches each host as `sky.SSH` would (its host key verified against known hosts), asks it what a
bootstrap asks (`skyward.bootstrap.node_commands.probe`), and says what a pool with the given image would
install there and whether that environment is already built. It changes nothing on the host.

``prewarm`` builds that environment: it starts a pool on the hosts with the image, the same bootstrap every pool
runs (cached afterwards), and ends it once every node is ready.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

from skyward.image import Image


def register(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor", help="check SSH hosts: key, Python, uv, disk, what a pool would install"
    )
    _host_options(doctor)
    doctor.set_defaults(run=run_doctor)
    prewarm = sub.add_parser("prewarm", help="build the node environment on SSH hosts ahead of a pool")
    _host_options(prewarm)
    prewarm.set_defaults(run=run_prewarm)


def _host_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "hosts", nargs="+", metavar="HOST", help="[user@]host[:port], as for sky.SSH(hosts=...)"
    )
    command.add_argument(
        "--pip", action="append", default=[], metavar="SPEC", help="an Image.pip entry (repeat)"
    )
    command.add_argument("--python", default=None, help="the hosts' interpreter (default: as sky.SSH)")
    command.add_argument("--key-file", default=None, help="the SSH key (default: as ssh would)")
    command.add_argument(
        "--known-hosts", default=None, help="the known-hosts file (default: ~/.ssh/known_hosts)"
    )
    command.add_argument("--connect-timeout", type=float, default=15.0, metavar="SECONDS")


def _ssh(args: argparse.Namespace) -> Any:
    from skyward.providers.ssh import SSH

    options: dict[str, Any] = {"key_file": args.key_file, "known_hosts": args.known_hosts}
    options["connect_timeout"] = args.connect_timeout
    if args.python:
        options["python"] = args.python
    return SSH(hosts=list(args.hosts), **options)


@dataclass(frozen=True)
class Diagnosis:
    host: str
    lines: tuple[str, ...]
    ok: bool


async def _diagnose(host: str, ssh: Any, image: Image) -> Diagnosis:
    from skyward.bootstrap.node_commands import answer_in, run_node_script
    from skyward.bootstrap.plan import make_plan
    from skyward.bootstrap.remote import probe
    from skyward.providers.ssh import build_project_wheels
    from skyward.providers.ssh_connect import HostSpec, connect

    try:
        conn = await connect(
            HostSpec.parse(host),
            key_file=ssh.key_file,
            known_hosts=ssh.known_hosts,
            verify_host_keys=ssh.verify_host_keys,
            timeout=ssh.connect_timeout,
            forward_agent=False,
        )
    except Exception as exc:  # noqa: BLE001  (each host's failure is reported, never hides the others)
        return Diagnosis(host, (f"cannot connect: {exc}",), ok=False)
    try:
        facts = await probe(conn, ssh.python, host, 60.0)
        lines = [
            "connected, host key verified" if ssh.verify_host_keys else "connected (host key NOT verified)",
            (
                f"python   {facts.python} {facts.python_version} ({facts.implementation}, {facts.machine}, "
                f"{' '.join(facts.libc).strip() or 'unknown libc'})"
            ),
            f"uv       {facts.uv or 'not found: a pool uploads one, or uses venv + pip'}",
        ]
        df = await conn.run(f"df -Pk {facts.home} | tail -1", check=False)
        fields = str(df.stdout or "").split()
        if df.exit_status == 0 and len(fields) >= 4 and fields[3].isdigit():
            lines.append(f"disk     {int(fields[3]) / 2**20:.1f} GiB free in {facts.home}")
        plan = make_plan(image, facts, await asyncio.to_thread(build_project_wheels))
        params = {
            "command": "check",
            "root": facts.root,
            "key": plan.key,
            "probe_index": True,
            "index_url": None,
        }
        _, output = await run_node_script(conn, ssh.python, host, params, timeout=60.0)
        check = answer_in(output, "SKYWARD-CHECK") or {}
        index = (
            "reachable" if check.get("online") else "not reachable: a pool installs offline, from wheels sent"
        )
        lines.append(f"index    {index}")
        state = "built (a pool starts without installing)" if check.get("cached") else "not built yet"
        lines.append(f"image    {len(plan.requirements)} requirement(s) -> environment {plan.key}: {state}")
        return Diagnosis(host, tuple(lines), ok=True)
    except Exception as exc:  # noqa: BLE001  (reported per host)
        return Diagnosis(host, (f"probe failed: {exc}",), ok=False)
    finally:
        conn.close()


def run_doctor(args: argparse.Namespace) -> int:
    from skyward.ioloop import shared_loop

    ssh, image = _ssh(args), Image(pip=tuple(args.pip))

    async def everyone() -> list[Diagnosis]:
        return list(await asyncio.gather(*(_diagnose(host, ssh, image) for host in args.hosts)))

    diagnoses = shared_loop().run(everyone()).result()
    for diagnosis in diagnoses:
        print(f"{diagnosis.host}: {'ok' if diagnosis.ok else 'PROBLEM'}")
        for line in diagnosis.lines:
            print(f"  {line}")
    return 0 if all(d.ok for d in diagnoses) else 1


def run_prewarm(args: argparse.Namespace) -> int:
    import skyward as sky
    from skyward.errors import SkywardError

    ssh = _ssh(args)
    try:
        with sky.ComputePool(provider=ssh, nodes=len(args.hosts), image=Image(pip=tuple(args.pip))) as pool:
            names = [node.name for node in pool.nodes]
    except SkywardError as exc:
        print(f"skyward prewarm: {exc}")
        return 1
    print(f"environment ready on {len(names)} host(s): {', '.join(args.hosts)}")
    return 0
