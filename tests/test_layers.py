"""Layers point one way: the core imports no plugin package (the plugins import the core)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_core_imports_no_plugin_package() -> None:
    script = textwrap.dedent(
        """
        import sys
        import skyward, skyward.integrations, skyward.integrations.joblib
        import skyward.plugins, skyward.pool, skyward.scheduler, skyward.worker.agent
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("skyward_joblib", "skyward_sklearn")))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_missing_plugin_is_a_clear_error_not_an_attribute_error() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["skyward_joblib"] = None  # hidden: importing it fails as if not installed
        import skyward.integrations
        try:
            skyward.integrations.JoblibPool
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "PluginNotInstalled JoblibPool is in the skyward-joblib package: install it"
    )
