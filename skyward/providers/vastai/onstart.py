"""The onstart script of a pool's VastAI instances: the node watchdog of `sky.AWS`, which stops the instance
through VastAI's API once the client is gone.

A VastAI instance is a Docker container: powering off from inside does nothing. VastAI gives each instance
``CONTAINER_ID`` and a key scoped to it, ``CONTAINER_API_KEY``, in the environment of its first process (not in
that of SSH sessions): the watchdog asks the API to destroy the instance with it, and to stop it where that key
may not destroy (a stopped instance no longer pays for its GPU; its disk is billed until it is destroyed).
"""

from __future__ import annotations

import shlex

from skyward.providers.aws.userdata import WatchdogTimes, watchdog_script

DEFAULT_SERVER = "https://console.vast.ai"

_STOP = r"""
import json, os, urllib.request
try:  # the container's first process holds them; the onstart script's own environment usually too
    env = dict(v.split("=", 1) for v in open("/proc/1/environ").read().split("\0") if "=" in v)
except OSError:
    env = {}
env.update(os.environ)
url = "%s/api/v0/instances/%s/" % (SERVER, env.get("CONTAINER_ID", ""))
headers = {"Authorization": "Bearer " + env.get("CONTAINER_API_KEY", ""), "Content-Type": "application/json"}
for method, body in (("DELETE", {}), ("PUT", {"state": "stopped"})):
    try:
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method=method)
        urllib.request.urlopen(request, timeout=30)
        break
    except Exception as error:
        print("skyward watchdog:", method, "failed:", error)
"""


def power_off_command(python: str, server: str) -> str:
    """Bash that destroys (else stops) this instance through VastAI's API, with the instance's own key."""
    program = f"SERVER = {server.rstrip('/')!r}\n" + _STOP
    return f"{shlex.quote(python)} - <<'SKYWARD_STOP'\n{program}SKYWARD_STOP"


def onstart(pool_id: str, times: WatchdogTimes, python: str, server: str) -> str:
    """The onstart script: the tools the watchdog needs where the image lacks them, then the watchdog."""
    script = watchdog_script(times, power_off=power_off_command(python, server))
    return f"""#!/bin/bash
# skyward pool {pool_id}: this instance destroys itself once its client is gone.
(command -v ss && command -v pgrep) >/dev/null 2>&1 || \\
    (apt-get update -qq && apt-get install -y -qq iproute2 procps) >/dev/null 2>&1
cat > /usr/local/bin/skyward-watchdog <<'SKYWARD_WATCHDOG'
{script}SKYWARD_WATCHDOG
chmod 755 /usr/local/bin/skyward-watchdog
nohup /usr/local/bin/skyward-watchdog >/var/log/skyward-watchdog.log 2>&1 &
"""
