"""The ``skyward`` command line, run as a user runs it (console script and ``python -m skyward``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import skyward


def _skyward(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "skyward", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _distribution(root: Path, name: str, module: str, body: str) -> None:
    """A minimal installed distribution on `root`: a module and a dist-info with one skyward.plugins entry."""
    (root / f"{module}.py").write_text(body)
    info = root / f"{name}-2.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 2.5\n")
    (info / "entry_points.txt").write_text(f"[skyward.plugins]\n{name} = {module}:factory\n")


def test_the_console_script_is_installed_and_says_its_version() -> None:
    script = shutil.which("skyward", path=str(Path(sys.executable).parent))
    assert script is not None, "pyproject's [project.scripts] should install a `skyward` command"
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == f"skyward {skyward.__version__}"


def test_plugins_lists_each_installed_plugin_with_distribution_version_and_hooks() -> None:
    done = _skyward("plugins")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:]}
    assert lines["joblib"][:3] == ["joblib", "skyward-joblib", __import__("skyward_joblib").__version__]
    assert lines["sklearn"][1] == "skyward-sklearn"
    assert "around_client," in lines["joblib"] and "image_transform" in lines["joblib"]


def test_plugins_reads_a_third_party_plugin_and_reports_a_broken_one(tmp_path: Path) -> None:
    _distribution(
        tmp_path,
        "tidy",
        "tidy_plugin",
        "import skyward as sky\n"
        "class Tidy:\n"
        "    @sky.hookimpl\n"
        "    def image_transform(self, image, cluster):\n"
        "        return image\n"
        "def factory(**options):\n"
        "    return Tidy()\n",
    )
    _distribution(
        tmp_path, "broken", "broken_plugin", "def factory(**options):\n    raise RuntimeError('no config')\n"
    )
    done = _skyward("plugins", "--json", path=tmp_path)
    assert done.returncode == 0, done.stderr  # --json reports problems in the rows, for scripts to decide
    rows = {row["name"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert rows["tidy"]["distribution"] == "tidy" and rows["tidy"]["version"] == "2.5"
    assert rows["tidy"]["hooks"] == ["image_transform"] and rows["tidy"]["target"] == "tidy_plugin:factory"
    assert rows["broken"]["hooks"] == [] and rows["broken"]["problem"] == "RuntimeError: no config"
    assert "joblib" in rows  # the others are still listed
    table = _skyward("plugins", path=tmp_path)
    assert table.returncode == 1  # the table is for people: a broken plugin fails the command
    assert "(error: RuntimeError: no config)" in table.stdout


@pytest.mark.parametrize("args", [[], ["nonsense"]])
def test_a_missing_or_unknown_command_is_a_usage_error(args: list[str]) -> None:
    done = _skyward(*args)
    assert done.returncode == 2 and "usage: skyward" in done.stderr
