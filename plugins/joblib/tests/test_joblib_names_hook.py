"""The start-up hook (skyward_joblib_names.pth): a fresh interpreter that imports joblib knows "skyward" without
importing skyward_joblib until the name is used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    import joblib.parallel
    from joblib import Parallel, delayed
    registered = "skyward" in joblib.parallel.BACKENDS
    imported_early = "skyward_joblib" in sys.modules
    try:
        Parallel(n_jobs=2, backend="skyward")(delayed(abs)(-1) for _ in range(2))
    except Exception as exc:  # top level, no pool: the plugin's own message
        outcome = type(exc).__name__ + ": " + str(exc)
    print(registered, imported_early, "skyward_joblib" in sys.modules)
    print(outcome)
    """
)


def test_a_fresh_interpreter_knows_the_name_once_joblib_is_imported() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    flags, outcome = done.stdout.splitlines()
    assert flags == "True False True"  # registered at joblib's import; skyward_joblib imported on first use
    assert outcome == "NoActivePool: skyward backend not configured: use it inside a ComputePool block"


def test_without_site_the_name_is_unknown() -> None:
    # -S skips .pth files: what the hook changes (joblib's own error), so the check above is not vacuous
    done = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path.extend({sys.path[1:]!r}); " + SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    flags, outcome = done.stdout.splitlines()
    assert flags.startswith("False") and outcome.startswith("ValueError: Invalid backend: skyward")
