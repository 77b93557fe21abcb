"""The nodes indexed for placement: the least loaded one with room, the one with the most stealable queued
tasks, and running counts, each O(log n) or O(1) to keep up in the number of nodes.

Both indexes are heaps invalidated lazily: each change to a node bumps its `version` and pushes fresh entries;
an entry whose version is not its node's is dropped when it surfaces. The heaps are rebuilt when stale entries
outnumber the nodes, which costs O(1) amortized per change. Recounting live nodes is O(n), done only when a node
goes down or comes back.
"""

from __future__ import annotations

import heapq
from typing import Any

from skyward.scheduling_state import NodeSlots


class NodeIndex:
    """Indexes over `nodes`; call `refresh(node)` after any change of its tasks or state."""

    def __init__(self, nodes: list[NodeSlots]) -> None:
        self.nodes = nodes
        self.idle_slots = 0  # idle slots of the open nodes
        self.usable = 0  # nodes that run tasks, or may again soon
        self.total_slots = 0  # slots of the live nodes
        self._roomy: list[tuple[float, int, int]] = []  # (load, index, version) of nodes with room
        self._victims: list[tuple[int, int, int]] = []  # (-stealable, index, version)
        self._rebuild_at = 4 * len(nodes) + 64
        for node in nodes:
            self.refresh(node)
        self.recount()

    def refresh(self, node: NodeSlots) -> None:
        # Inlined (`NodeSlots.free`, `idle_slots`, `queued_here`): it runs twice per task.
        node.version = version = node.version + 1
        running, capacity = len(node.running), node.capacity
        idle = 0
        if node.alive and node.reserved is None and not node.suspects:  # open to new work
            idle = capacity - running if running < capacity else 0
            if running < capacity + node.prefetch:
                heapq.heappush(self._roomy, (running / capacity, node.index, version))
        self.idle_slots += idle - node.idle_counted
        node.idle_counted = idle
        if node.alive and running - capacity > node.stealing:
            heapq.heappush(self._victims, (node.stealing + capacity - running, node.index, version))
        if len(self._roomy) + len(self._victims) > self._rebuild_at:
            self._rebuild()

    def _rebuild(self) -> None:
        """Drop the stale entries: those left are each node's current one (at most one per node and heap)."""
        nodes = self.nodes
        self._roomy = [entry for entry in self._roomy if entry[2] == nodes[entry[1]].version]
        self._victims = [entry for entry in self._victims if entry[2] == nodes[entry[1]].version]
        heapq.heapify(self._roomy)
        heapq.heapify(self._victims)

    def least_loaded(self) -> NodeSlots | None:
        """The least loaded node with room (the lowest index among equals), or None."""
        return self._top(self._roomy)

    def most_stealable(self) -> NodeSlots | None:
        """The live node with the most tasks queued beyond its slots and not being withdrawn, or None."""
        return self._top(self._victims)

    def pass_over_victim(self) -> None:
        """Leave the current `most_stealable` out until it changes (its queued tasks cannot move)."""
        heapq.heappop(self._victims)

    def _top(self, heap: list[tuple[Any, int, int]]) -> NodeSlots | None:
        while heap:
            _, index, version = heap[0]
            node = self.nodes[index]
            if version == node.version:
                return node
            heapq.heappop(heap)
        return None

    def recount(self) -> None:
        """Recount the live nodes after one went down or came back."""
        self.usable = sum(node.alive or node.recovering for node in self.nodes)
        self.total_slots = sum(node.capacity for node in self.nodes if node.alive)
