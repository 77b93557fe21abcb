"""The pieces of the SSH bootstrap that need no sshd: host specs, platform tags, pins, repacked wheels, keys."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from base64 import urlsafe_b64encode
from importlib.metadata import distribution, version
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.tags import parse_tag

import skyward as sky
from skyward.bootstrap import node_script
from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.plan import make_plan
from skyward.bootstrap.remote import remote_path
from skyward.bootstrap.requirements import CLIENT_ONLY, pin_to_client, runtime_requirements
from skyward.bootstrap.wheels import Wheel, installed_tags, repack
from skyward.providers.ssh_connect import HostSpec


def facts(**overrides: object) -> NodeFacts:
    values: dict[str, object] = {
        "home": "/home/me",
        "root": "/home/me/.skyward",
        "hostname": "node",
        "python": "/usr/bin/python3.12",
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}.1",
        "implementation": "cpython",
        "abi": f"cp{sys.version_info.major}{sys.version_info.minor}",
        "machine": "x86_64",
        "system": "Linux",
        "libc": ("glibc", "2.36"),
        "markers": {**default_environment(), "sys_platform": "linux", "platform_system": "Linux"},
        "uid": 1000,
        "sudo": False,
        "uv": None,
        "has_venv": True,
        "has_apt": True,
    }
    values.update(overrides)
    return NodeFacts(**values)  # type: ignore[arg-type]


# --- host specs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("gpu1", None, "gpu1", None),
        ("me@gpu1", "me", "gpu1", None),
        ("me@gpu1:2222", "me", "gpu1", 2222),
        ("10.0.0.5:22", None, "10.0.0.5", 22),
        ("me@[fe80::1]:2200", "me", "fe80::1", 2200),
        ("fe80::1", None, "fe80::1", None),
        ("first.last@example.org@host:23", "first.last@example.org", "host", 23),
    ],
)
def test_host_specs_are_read_like_ssh_does(text: str, user: str | None, host: str, port: int | None) -> None:
    spec = HostSpec.parse(text)
    assert (spec.user, spec.host, spec.port, spec.text) == (user, host, port, text)


@pytest.mark.parametrize("text", ["", "me@", "host:0", "host:99999", "host:ssh", "[::1", "[::1]x"])
def test_bad_host_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="host"):
        HostSpec.parse(text)


def test_the_provider_checks_its_arguments_when_made() -> None:
    with pytest.raises(TypeError, match="list of hosts"):
        sky.SSH(hosts="me@gpu1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        sky.SSH(hosts=[])
    with pytest.raises(ValueError, match="port"):
        sky.SSH(hosts=["gpu1:http"])
    with pytest.raises(ValueError, match="installer"):
        sky.SSH(hosts=["gpu1"], installer="conda")  # type: ignore[arg-type]
    provider = sky.SSH(hosts=["a", "b"])
    assert provider.hosts == ("a", "b") and provider.verify_host_keys and provider.name == "ssh"


def test_remote_paths_are_quoted_but_keep_the_home() -> None:
    assert remote_path("/opt/py 3/bin/python") == "'/opt/py 3/bin/python'"
    assert remote_path("~/miniconda/bin/python") == '"$HOME"/miniconda/bin/python'
    assert remote_path("python3.12") == "python3.12"
    assert remote_path("x; rm -rf /") == "'x; rm -rf /'"


# --- platforms ----------------------------------------------------------------------------------------------


def test_a_glibc_node_accepts_manylinux_wheels_up_to_its_glibc() -> None:
    node = facts()
    assert "manylinux_2_36_x86_64" in node.platforms and "manylinux2014_x86_64" in node.platforms
    assert "manylinux_2_37_x86_64" not in node.platforms
    assert node.platforms[-1] == "linux_x86_64"
    assert node.accepts(parse_tag(f"{node.abi}-abi3-manylinux_2_17_x86_64"))
    assert node.accepts(parse_tag("py3-none-any"))
    assert not node.accepts(parse_tag(f"{node.abi}-{node.abi}-manylinux_2_38_x86_64"))
    assert not node.accepts(parse_tag(f"{node.abi}-{node.abi}-macosx_11_0_arm64"))
    assert not facts(machine="aarch64").accepts(parse_tag(f"{node.abi}-{node.abi}-manylinux_2_17_x86_64"))
    assert not node.accepts(parse_tag("cp311-cp311-manylinux_2_17_x86_64"))


def test_the_clients_own_compiled_wheels_fit_a_node_like_this_machine() -> None:
    tags = installed_tags(distribution("lz4"))
    assert tags is not None
    node = facts(libc=("glibc", os.confstr("CS_GNU_LIBC_VERSION").split()[1]), machine=os.uname().machine)
    assert node.accepts(tags)


# --- pins ---------------------------------------------------------------------------------------------------


def test_the_worker_runtime_is_pinned_to_the_clients_versions() -> None:
    names = {r.name for r in runtime_requirements()}
    assert "cloudpickle" in names and "casty" in names
    assert not names & CLIENT_ONLY  # the client's SSH library stays on the client
    resolution = pin_to_client(runtime_requirements(), facts().markers)
    assert str(resolution.pins["cloudpickle"]) == f"cloudpickle=={version('cloudpickle')}"
    assert str(resolution.pins["casty"]) == "casty==0.30.2"
    assert resolution.unresolved == ()


def test_pins_follow_dependencies_and_node_markers() -> None:
    markers = facts().markers
    resolution = pin_to_client(
        ["scikit-learn", 'pywin32>=300; sys_platform == "win32"', "surely-not-installed-pkg>=1", "numpy<1"],
        markers,
    )
    # scikit-learn and its dependencies, at the versions installed here.
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"):
        assert resolution.pins[name].version == version(name)
    assert "pywin32" not in resolution.pins and not any("pywin32" in r for r in resolution.unresolved)
    # What the client cannot pin goes to the node's resolver (online) or to pip download (offline).
    assert "surely-not-installed-pkg>=1" in resolution.unresolved
    assert "numpy<1" in resolution.unresolved


def test_the_environment_key_follows_what_is_installed_and_nothing_else(tmp_path: Path) -> None:
    wheel = Wheel(tmp_path / "skyward-0.1.0-py3-none-any.whl", "ab" * 32)
    node = facts()
    base = make_plan(sky.Image(pip=["joblib"]), node, (wheel,))
    assert base.key == make_plan(sky.Image(pip=["joblib"]), node, (wheel,)).key
    assert base.key == make_plan(sky.Image(pip=["joblib"], env={"A": "1"}), node, (wheel,)).key
    assert f"joblib=={version('joblib')}" in base.constraints
    others = [
        make_plan(sky.Image(pip=["joblib", "numpy"]), node, (wheel,)),
        make_plan(sky.Image(pip=["joblib"], apt=["git"]), node, (wheel,)),
        make_plan(sky.Image(pip=["joblib"]), node, (Wheel(wheel.path, "cd" * 32),)),
        make_plan(sky.Image(pip=["joblib"]), facts(python="/opt/python3.12"), (wheel,)),
        make_plan(sky.Image(pip=["joblib"]), facts(machine="aarch64"), (wheel,)),
    ]
    assert len({base.key, *(plan.key for plan in others)}) == 1 + len(others)


# --- repacked wheels ----------------------------------------------------------------------------------------


def test_repacked_wheels_are_reproducible_valid_and_installable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SKYWARD_CACHE_DIR", str(tmp_path / "one"))
    first = repack(distribution("cloudpickle"))
    monkeypatch.setenv("SKYWARD_CACHE_DIR", str(tmp_path / "two"))
    second = repack(distribution("cloudpickle"))
    assert first.path != second.path and first.sha256 == second.sha256
    assert first.filename == f"cloudpickle-{version('cloudpickle')}-py3-none-any.whl"

    with zipfile.ZipFile(first.path) as archive:
        names = archive.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        record = archive.read(record_name).decode().splitlines()
        assert not any(n.endswith((".pyc", "INSTALLER", "direct_url.json")) for n in names)
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            if path == record_name:
                continue
            data = archive.read(path)
            assert (
                digest == "sha256=" + urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            )
            assert int(size) == len(data)

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to install the repacked wheel into a scratch environment")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--offline",
            "--no-index",
            "--python",
            str(venv / "bin" / "python"),
            str(first.path),
        ],
        check=True,
    )
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import cloudpickle; print(cloudpickle.__version__, cloudpickle.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == version("cloudpickle") and out[1].startswith(str(venv))


# --- the node script ----------------------------------------------------------------------------------------


def test_apt_packages_without_root_are_a_clear_error() -> None:
    """The node script's apt step, run by a real unprivileged process (on the system's Python 3)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or python is None or setpriv is None:
        pytest.skip("needs root, setpriv and a system python3 to run the step as an unprivileged user")
    tmp_path = Path(tempfile.mkdtemp(prefix="skyward-apt-"))  # pytest's tmp_path is private to root
    os.chmod(tmp_path, 0o777)
    try:
        _run_apt_step_unprivileged(tmp_path, python, setpriv)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_apt_step_unprivileged(tmp_path: Path, python: str, setpriv: str) -> None:
    script = tmp_path / "node_script.py"
    script.write_text(Path(node_script.__file__).read_text())
    os.chmod(script, 0o644)
    program = (
        "import runpy, sys\n"
        f"ns = runpy.run_path({str(script)!r})\n"
        f"log = ns['_Log']({str(tmp_path / 'apt.log')!r})\n"
        "try:\n"
        "    ns['_apt'](['skyward-surely-not-a-debian-package'], {'sudo': False}, log)\n"
        "except ns['InstallFailed'] as exc:\n"
        "    print('FAILED', exc)\n"
    )
    result = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.stdout.startswith("FAILED"), result.stdout + result.stderr
    assert "skyward-surely-not-a-debian-package" in result.stdout and "needs root" in result.stdout
