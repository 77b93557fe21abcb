"""The lab itself: a batch job on both nodes runs in each node's own namespaces."""

from __future__ import annotations

from slurm_lab import SlurmLab


def test_a_two_node_job_runs_in_both_node_namespaces(lab: SlurmLab) -> None:
    out = lab.root / "lab-check-%j.txt"
    lab.command(
        "sbatch",
        "--wait",
        "-N2",
        "--ntasks-per-node=1",
        "-o",
        str(out),
        "--wrap",
        "srun sh -c 'echo $(hostname) $(stat -L -c %i /proc/self/ns/net)'",
        timeout=90,
    )
    [written] = lab.root.glob("lab-check-*.txt")
    seen = dict(line.split() for line in written.read_text().splitlines())
    assert seen == {name: str(node.netns_inode()) for name, node in lab.nodes.items()}
    assert lab.jobs_after_close() == []
