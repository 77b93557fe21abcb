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


class WorkerCrashed(SkywardError):
    """A task killed the worker process that ran it (``os._exit``, a segfault, the OOM killer) too many times.

    Raised by the task's future once the task has crashed a worker ``max_task_crashes`` times (a
    `sky.ComputePool` parameter); other tasks are unaffected. Attributes: ``function`` (what the task called),
    ``node`` (where it crashed last), ``exit_code`` or ``signal`` (how that process ended; the other is
    ``None``), ``crashes`` and ``output`` (the last lines the process wrote to stdout/stderr).
    """

    def __init__(
        self,
        function: str,
        node: str,
        exit_code: int | None,
        signal: int | None,
        crashes: int,
        output: tuple[str, ...] = (),
    ) -> None:
        self.function = function
        self.node = node
        self.exit_code = exit_code
        self.signal = signal
        self.crashes = crashes
        self.output = tuple(output)
        times = "once" if crashes == 1 else f"{crashes} times"
        how = describe_exit(exit_code, signal)
        text = f"{function} crashed its worker process {times}; last on node {node}: {how}"
        if self.output:
            text += ". Its last output:\n" + "\n".join(f"  | {line}" for line in self.output)
        else:
            text += " (it wrote nothing before dying)"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.function, self.node, self.exit_code, self.signal, self.crashes, self.output),
        )


def describe_exit(exit_code: int | None, signal: int | None) -> str:
    """``"exit code 3"``, ``"killed by signal 11 (SIGSEGV)"``, or ``"it ended in an unknown way"``."""
    if signal is not None:
        import signal as signals

        try:
            name = signals.Signals(signal).name
        except ValueError:
            return f"killed by signal {signal}"
        return f"killed by signal {signal} ({name})"
    if exit_code is not None:
        return f"exit code {exit_code}"
    return "it ended in an unknown way"
