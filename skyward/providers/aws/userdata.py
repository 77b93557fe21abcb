"""The user data of a pool's instances: a watchdog that powers the node off once its client is gone.

Instances are launched with ``InstanceInitiatedShutdownBehavior=terminate``, so powering off terminates them. The
client terminates its instances itself at teardown; the watchdog is for when it cannot (killed, its machine
lost, its network cut). It judges the client by what the node can see:

1. Booting: no SSH connection has come yet. The client connects once every node of the pool answers; if none
   comes within ``connect_grace`` seconds, the client gave up or died: power off.
2. Bootstrapping: a client is connected but no worker runs yet. While an SSH connection is open, the client is
   there (sshd drops a dead client's connection within a minute: ``ClientAliveInterval`` below). With no
   connection for ``idle`` seconds: power off.
3. Working: the worker agent (``python -m skyward.worker``) runs. It exits when its client closes the session
   or stays silent past the pool's lease (the agent's own rule); once it has exited: power off.

It runs as a systemd service started by cloud-init. Any AMI with cloud-init, bash, systemd, ``pgrep`` and
``ss`` runs it (Ubuntu, Debian, Amazon Linux and the Deep Learning AMIs do).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

# The worker's command line after the SSH provider's launcher exec's it: `python -u -m skyward.worker`.
WORKER_PATTERN = "-m skyward.worker"


@dataclass(frozen=True)
class WatchdogTimes:
    """Seconds that shape the watchdog (see the module docstring)."""

    connect_grace: float
    idle: float
    poll: float = 5.0


def watchdog_times(ssh_timeout: float, host_key_wait: float, lease: float) -> WatchdogTimes:
    """The watchdog's times for a pool: generous enough never to stop a node its client still wants.

    The client connects to the nodes once all of them answer SSH (at most `ssh_timeout` after launch) and their
    host keys are known (at most `host_key_wait` more); two minutes on top cover slow boots and clocks.
    """
    return WatchdogTimes(connect_grace=ssh_timeout + host_key_wait + 120, idle=max(lease, 60) + 60)


POWER_OFF = 'shutdown -h now "skyward: $reason"'


def watchdog_script(
    times: WatchdogTimes,
    *,
    worker_pattern: str = WORKER_PATTERN,
    ssh_port: int = 22,
    power_off: str = POWER_OFF,
) -> str:
    """The watchdog as a bash script. It runs `power_off` (``shutdown -h now`` by default; ``$reason`` says
    why) when the client is gone, then exits."""
    return f"""#!/bin/bash
# skyward node watchdog: power the node off once its skyward client is gone.
set -u
CONNECT_GRACE={int(times.connect_grace)}
IDLE={int(times.idle)}
POLL={times.poll:g}
start=$(date +%s)
last_connection=""
worker_seen=0
while true; do
    now=$(date +%s)
    if pgrep -f -- {shlex.quote(worker_pattern)} >/dev/null 2>&1; then
        worker_seen=1
    elif [ "$worker_seen" = 1 ]; then
        reason="its worker exited (the pool ended, or its client went silent past the lease)"
        break
    else
        if [ -n "$(ss -Htn state established '( sport = :{ssh_port} )' 2>/dev/null)" ]; then
            last_connection=$now
        fi
        if [ -z "$last_connection" ] && [ $((now - start)) -ge "$CONNECT_GRACE" ]; then
            reason="no client connected within ${{CONNECT_GRACE}}s"
            break
        fi
        if [ -n "$last_connection" ] && [ $((now - last_connection)) -ge "$IDLE" ]; then
            reason="no client connection for ${{IDLE}}s while bootstrapping"
            break
        fi
    fi
    sleep "$POLL"
done
echo "skyward watchdog: $reason; powering off" >&2
{power_off}
"""


def user_data(pool_id: str, times: WatchdogTimes) -> str:
    """The cloud-init user data of the pool's instances: the watchdog as a service, and sshd dropping dead
    clients within a minute (so that a vanished client's session, and with it its worker, ends)."""
    script = watchdog_script(times)
    return f"""#!/bin/bash
# skyward pool {pool_id}: this node powers itself off (and so terminates) once its client is gone.
set -u
mkdir -p /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/60-skyward.conf <<'SKYWARD_SSHD'
ClientAliveInterval 15
ClientAliveCountMax 4
SKYWARD_SSHD
systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true
cat > /usr/local/sbin/skyward-watchdog <<'SKYWARD_WATCHDOG'
{script}SKYWARD_WATCHDOG
chmod 755 /usr/local/sbin/skyward-watchdog
cat > /etc/systemd/system/skyward-watchdog.service <<'SKYWARD_UNIT'
[Unit]
Description=skyward: power off once the pool's client is gone
After=network-online.target ssh.service

[Service]
ExecStart=/usr/local/sbin/skyward-watchdog
Restart=on-failure

[Install]
WantedBy=multi-user.target
SKYWARD_UNIT
systemctl daemon-reload
systemctl enable --now skyward-watchdog.service || (nohup /usr/local/sbin/skyward-watchdog >/dev/null 2>&1 &)
"""
