"""The node agent: ``python -m skyward.worker`` runs on every node and executes the pool's tasks."""

# The line the agent prints once it listens; what follows is JSON with its port and pid.
READY_PREFIX = "SKYWARD-READY "
