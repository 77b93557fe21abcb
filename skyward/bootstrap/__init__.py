"""Bootstrapping remote nodes: a per-image Python environment built over SSH, then the worker agent in it.

- `facts`: what a node is (interpreter, platform, tools), from a probe;
- `requirements`: what goes on it, pinned to the client's installed versions;
- `wheels`: the wheels made or fetched on the client (skyward and plugins always; everything when offline);
- `plan`: the install plan of an image for a kind of node, and the hash that names its environment;
- `remote`: the client side of probe / check / upload / install over asyncssh;
- `node_script`: the node side (standard library only), run by the node's own interpreter;
- `progress`: the per-node phase events.
"""

from skyward.bootstrap.progress import BootstrapEvent, print_event

__all__ = ["BootstrapEvent", "print_event"]
