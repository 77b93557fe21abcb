"""Exceptions skyward raises on the client."""

from __future__ import annotations


class SkywardError(Exception):
    """Base class of the errors skyward raises itself (not those raised by user code on a node)."""


class NoActivePool(SkywardError):
    """A pending call was sent to the implicit pool outside every `with sky.ComputePool(...)` block."""


class PayloadTooLarge(SkywardError):
    """A task, or its result, is larger than one message between client and node may carry."""


class NodeLost(SkywardError):
    """A task could not be completed because the nodes it was sent to stopped answering."""


class ProvisionError(SkywardError):
    """Nodes could not be started (a worker that failed to boot, an image that cannot be satisfied, ...)."""


class RemoteError(SkywardError):
    """An exception raised on a node whose type could not be rebuilt on the client.

    Carries the remote type name, message and traceback as text.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.remote_message = message
        self.remote_traceback = remote_traceback
