"""Charts of suite.py's figures: one SVG per workload, skyward beside its peers (`suite.py --plot DIR`).

Bars, one per runner and figure, skyward's coloured apart; a runner that failed or timed out gets its reason
written where its bar would be. The SVGs are reproducible from the same figures (no date, fixed ids) and keep
their text as text, so they stay small and diff well in the docs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Per workload: (key, label, higher is better), as suite.py's COLUMNS.
Columns = Mapping[str, Sequence[tuple[str, str, bool]]]
Results = Mapping[str, Mapping[str, Mapping[str, float] | str]]

OURS, PEER, FAILED = "#1f77b4", "#b0b0b0", "#c0392b"
TITLES = {
    "efficiency": "efficiency: many sleep() tasks on every slot",
    "tiny": "tiny: Parallel(n_jobs=-1) of no-op calls",
    "bigargs": "bigargs: GridSearchCV with a large X",
    "latency": "latency: one call's round trip",
    "startup": "startup: pool or cluster to first result",
    "core": "core dispatch: one call, and small calls in flight",
}
#: bench_core.py's figures, as a workload of their own.
CORE_COLUMNS = {"core": [("p50_ms", "p50 ms", False), ("calls_per_s", "calls/s", True)]}


def plot_core(result: Mapping[str, object], directory: str | Path, note: str = "") -> list[Path]:
    """Write ``core.svg``: bench_core.py's ``--json`` result, skyward beside the casty floor and the stdlib."""
    rows = result["rows"]
    assert isinstance(rows, list)
    by_runner = {row["runner"].split(" (")[0] if row["runner"].startswith("skyward") else row["runner"]: row
                 for row in rows}  # fmt: skip
    return plot({"core": by_runner}, CORE_COLUMNS, directory, note)


def plot(results: Results, columns: Columns, directory: str | Path, note: str = "") -> list[Path]:
    """Write ``<workload>.svg`` into `directory` for every workload of `results`; returns the paths written.

    A figure no runner has (e.g. skyward's MB sent, alone) is left out. `note` is printed under each chart (the
    machine, the date).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "skyward", "font.size": 10}):
        for workload, by_runner in results.items():
            keys = [
                column
                for column in columns.get(workload, ())
                if sum(isinstance(f, Mapping) and f.get(column[0]) is not None for f in by_runner.values())
                > 1
            ]
            if not keys:
                continue
            fig = plt.figure(figsize=(4.2 * len(keys), 0.5 * len(by_runner) + 1.6))
            for ax, (key, label, higher) in zip(
                fig.subplots(1, len(keys), squeeze=False)[0], keys, strict=True
            ):
                _bars(ax, by_runner, key, f"{label} ({'higher' if higher else 'lower'} is better)")
            fig.suptitle(TITLES.get(workload, workload), fontweight="bold", x=0.02, ha="left")
            if note:
                fig.text(0.02, 0.01, note, fontsize=7, color="#555555")
            fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
            path = out / f"{workload}.svg"
            fig.savefig(path, format="svg", metadata={"Date": None})
            plt.close(fig)
            written.append(path)
    return written


def _bars(ax: Axes, by_runner: Mapping[str, Mapping[str, float] | str], key: str, title: str) -> None:
    runners = list(by_runner)
    values = [f.get(key) if isinstance(f, Mapping) else None for f in by_runner.values()]
    top = max((v for v in values if v is not None), default=1.0) or 1.0
    positions = range(len(runners))
    ax.barh(
        positions,
        [v or 0 for v in values],
        color=[OURS if r == "skyward" else PEER for r in runners],
    )
    for y, (runner, value) in enumerate(zip(runners, values, strict=True)):
        figures = by_runner[runner]
        if value is None:
            reason = figures if isinstance(figures, str) else "not measured"
            reason = reason if len(reason) <= 48 else reason[:47].rsplit(" ", 1)[0] + " …"
            color = FAILED if isinstance(figures, str) else "#777777"
            ax.text(top * 0.01, y, reason, va="center", fontsize=8, color=color)
        else:
            ax.text(value, y, f" {_number(value)}", va="center", fontsize=8)
    ax.set_yticks(list(positions), runners)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.3)
    ax.set_title(title, fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
