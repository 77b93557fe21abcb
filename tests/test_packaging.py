"""The three distributions as a user installs them: built with `uv build`, installed into a fresh virtual
environment, and the hello guide run from outside the repository (docs/installation.md says to do exactly this).

Also what the wheels must carry: the licence, `py.typed`, the version from the package's one `__version__`, the
plugins' compatible `skyward` range and their entry points.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"skyward": "skyward", "skyward_joblib": "plugins/joblib", "skyward_sklearn": "plugins/sklearn"}


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build the wheels (`pip install uv`)")
    return uv


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, cwd=cwd, env=env)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(_uv(), "build", "--all-packages", "--wheel", "--out-dir", str(out), cwd=ROOT)
    found = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert set(found) == set(PACKAGES), sorted(found)
    return found


def _metadata(wheel: Path) -> tuple[list[str], object]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = next(name for name in names if name.endswith(".dist-info/METADATA"))
        return names, Parser().parsestr(archive.read(meta).decode())


def _declared_version(package: str) -> str:
    init = (
        ROOT / PACKAGES[package] / "__init__.py"
        if package == "skyward"
        else ROOT / PACKAGES[package] / package / "__init__.py"
    )
    match = re.search(r'^__version__ = "([^"]+)"', init.read_text(), re.MULTILINE)
    assert match, f"no __version__ in {init}"
    return match.group(1)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_wheel_carries_its_licence_type_marker_and_single_sourced_version(
    wheels: dict[str, Path], package: str
) -> None:
    names, meta = _metadata(wheels[package])
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert f"{package}/py.typed" in names
    assert meta["Version"] == _declared_version(package)  # type: ignore[index]
    assert meta["License-Expression"] == "MIT"  # type: ignore[index]
    assert "Typing :: Typed" in meta.get_all("Classifier")  # type: ignore[attr-defined]
    assert meta.get_all("Project-URL")  # type: ignore[attr-defined]


@pytest.mark.parametrize("package", ["skyward_joblib", "skyward_sklearn"])
def test_plugins_depend_on_a_compatible_skyward_range(wheels: dict[str, Path], package: str) -> None:
    _, meta = _metadata(wheels[package])
    requires = meta.get_all("Requires-Dist")  # type: ignore[attr-defined]
    skyward = [r for r in requires if re.match(r"skyward[<>=! ]", r)]
    major, minor = _declared_version("skyward").split(".")[:2]
    assert skyward == [f"skyward<{major}.{int(minor) + 1},>={major}.{minor}"], requires


def test_the_hello_guide_runs_from_the_installed_wheels_in_a_fresh_environment(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    uv = _uv()
    venv = tmp_path / "venv"
    _run(uv, "venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--quiet", "--python", str(python), *map(str, wheels.values()))
    # Run from a directory with nothing of the repository in it: the installed packages are all there is.
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "guides" / "01_hello_skyward.py", work / "hello.py")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SKYWARD_EXAMPLE_SMALL"] = "1"
    where = _run(
        str(python), "-c", "import skyward, skyward_sklearn; print(skyward.__file__)", cwd=work, env=env
    )
    assert where.startswith(str(venv)), where
    out = _run(str(python), "hello.py", cwd=work, env=env)
    assert re.search(r"hello world from \S*node-\d", out), out
    client = int(re.search(r"client pid (\d+)", out).group(1))  # type: ignore[union-attr]
    nodes = [int(pid) for pid in re.findall(r"\d+", out.splitlines()[-1].split("nodes", 1)[1])]
    assert len(nodes) == 2 and client not in nodes, out
    # The plugins' entry points resolve in the fresh environment.
    plugins = _run(
        str(python),
        "-c",
        "import skyward as sky; print(type(sky.plugins.sklearn()).__name__, type(sky.plugins.joblib()).__name__)",
        cwd=work,
        env=env,
    )
    assert plugins.split() == ["SklearnPlugin", "JoblibPlugin"], plugins
