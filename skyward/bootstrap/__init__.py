"""Bootstrapping remote nodes: a per-image Python environment built over SSH, then the worker agent in it.

- `facts`: what a node is (interpreter, platform, tools), from a probe;
- `requirements`: what goes on it, pinned to the client's installed versions;
- `wheels`: the wheels built or repacked on the client (skyward and plugins always; everything when offline);
  `wheel_download`: those downloaded for the node's platform, and an offline node's wheelhouse; `wheel_cache`:
  where they are kept; `client_tools`: the client's uv and pip;
- `plan`: the install plan of an image for a kind of node, and the hash that names its environment;
- `environments`: the plans and wheelhouses the nodes of one pool share;
- `remote`: the client side of check / upload / install over asyncssh (`NodeBootstrap`), with `node_commands`
  (running the node script, `probe`), `installer` (uv or venv+pip) and `upload` (SFTP);
- `node_script`: the node side (standard library only), run by the node's own interpreter;
- `progress`: the per-node phase events.
"""

from skyward.bootstrap.progress import BootstrapEvent, print_event

__all__ = ["BootstrapEvent", "print_event"]
