"""Nodes inside this process: the real agent code behind a `skyward.link.Link` without processes or sockets.

- `InProcess`: a provider (``sky.ComputePool(provider=InProcess(), ...)``) whose nodes are real `TaskRunner`s
  with real slots, served on one thread of this process (`NodeHost`); `current_node()` names the node a task
  runs on.
- `InProcessLink`: the link the pool gets from an `InProcessDeployment`, carrying the real wire bytes.
- `VirtualSlots`: slots that hold each task a set time on timers (the scale simulation's nodes).

Scheduling tests run on these instead of processes; ``benchmarks/simulate.py`` drives a thousand simulated
nodes.
"""

from __future__ import annotations

from skyward.inprocess.host import Mailbox, NodeHost
from skyward.inprocess.link import InProcessLink, InProcessNode
from skyward.inprocess.provider import InProcess, InProcessDeployment, SlotsFactory, current_node
from skyward.inprocess.virtual import VirtualSlots

__all__ = [
    "InProcess",
    "InProcessDeployment",
    "InProcessLink",
    "InProcessNode",
    "Mailbox",
    "NodeHost",
    "SlotsFactory",
    "VirtualSlots",
    "current_node",
]
