"""The half of the bootstrap that runs on the node: facts, cache check and installation of one environment.

The client sends this file's text on the stdin of ``<python> -`` followed by one call, ``_main(<params>)``.
It must therefore use the standard library only and run on any Python >= 3.7 the node may have (it is what
tells the client that the interpreter is the wrong version). For the same reason it is one module, over the
usual ~300 lines: it travels as one text and cannot import its own parts on a node that has no skyward yet. It talks back with prefixed lines on stdout:

- ``SKYWARD-FACTS {json}``: the answer of ``probe``;
- ``SKYWARD-CHECK {json}``: the answer of ``check``;
- ``SKYWARD-PID <pid>``: first line of ``install``: what the client interrupts (SIGINT) if it gives up;
- ``SKYWARD-STEP <phase> <text>``: progress of ``install`` (phases: ``wait``, ``install``);
- ``SKYWARD-RESULT {json}``: ``install`` finished (``{"outcome": "installed" | "cached"}``);
- ``SKYWARD-FAILED`` then the tail of the install log, with exit status 1.

Layout under ``<root>`` (``~/.skyward``): ``envs/<key>/`` one environment per image key, complete once
``envs/<key>/.skyward-ready`` exists; ``envs/<key>.lock`` serialises installs of that key across processes and
hosts sharing the home (``lockf`` is honoured by NFS); ``envs/<key>.log`` the last install's log;
``wheels/<sha256>/<file>.whl`` content-addressed wheels uploaded by clients; ``bin/uv-<version>`` a uv taken
from a wheel when the node has none.
"""

import errno
import fcntl
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile

READY_MARKER = ".skyward-ready"
DEFAULT_INDEX = "https://pypi.org/simple/"
TAIL_LINES = 40


def _say(prefix, payload):
    sys.stdout.write(prefix + " " + json.dumps(payload) + "\n")
    sys.stdout.flush()


def _step(phase, text):
    sys.stdout.write("SKYWARD-STEP " + phase + " " + text + "\n")
    sys.stdout.flush()


# --- probe --------------------------------------------------------------------------------------------------


def _marker_environment():
    # The same keys as packaging.markers.default_environment(): the client evaluates markers for this node.
    impl = sys.implementation
    iver = f"{impl.version.major}.{impl.version.minor}.{impl.version.micro}"
    if impl.version.releaselevel != "final":
        iver += impl.version.releaselevel[0] + str(impl.version.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": iver,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def _libc():
    try:
        name_version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        name_version = ""
    parts = name_version.split()
    if len(parts) == 2 and parts[0] == "glibc":
        return ["glibc", parts[1]]
    if sys.platform.startswith("linux"):
        # No glibc: musl (Alpine) says so in the loader's name.
        for entry in os.listdir("/lib") if os.path.isdir("/lib") else []:
            if entry.startswith("ld-musl-"):
                return ["musl", ""]
    return ["", ""]


def _uv_runs(path):
    """Whether `path` really is a uv that runs here: a pyenv shim on PATH may only answer
    ``pyenv: uv: command not found`` (exit 127)."""
    try:
        result = subprocess.run(
            [path, "--version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and result.stdout.decode(errors="replace").startswith("uv ")


def _find_uv(root):
    """The node's own uv if it runs, else one unpacked earlier into ``<root>/bin``, else ``None``."""
    found = shutil.which("uv")
    if found and _uv_runs(found):
        return found
    bindir = os.path.join(root, "bin")
    if os.path.isdir(bindir):
        for name in sorted(os.listdir(bindir), reverse=True):
            path = os.path.join(bindir, name)
            if name.startswith("uv-") and not name.endswith(".part") and _uv_runs(path):
                return path
    return None


def probe(params):
    home = os.path.expanduser("~")
    root = os.path.join(home, ".skyward")
    abi = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        abi += "t"
    if sysconfig.get_config_var("Py_DEBUG"):
        abi += "d"
    try:
        import ensurepip  # noqa: F401  (Debian splits it into python3-venv; venv+pip needs it)
        import venv  # noqa: F401

        has_venv = True
    except ImportError:
        has_venv = False
    sudo = False
    if os.geteuid() != 0 and shutil.which("sudo"):
        sudo = (
            subprocess.call(["sudo", "-n", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
        )
    _say(
        "SKYWARD-FACTS",
        {
            "home": home,
            "root": root,
            "hostname": socket.gethostname(),
            "python": sys.executable,
            "python_version": platform.python_version(),
            "implementation": sys.implementation.name,
            "abi": abi,
            "machine": platform.machine(),
            "system": platform.system(),
            "libc": _libc(),
            "markers": _marker_environment(),
            "uid": os.geteuid(),
            "sudo": sudo,
            "uv": _find_uv(root),
            "has_venv": has_venv,
            "has_apt": bool(shutil.which("apt-get")),
        },
    )


# --- check --------------------------------------------------------------------------------------------------


def _index_reachable(url, timeout):
    import urllib.request  # here: it costs tens of milliseconds, and most checks find a cached environment

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except (OSError, ValueError):  # URLError, timeouts, TLS errors are OSErrors; a malformed URL a ValueError
        return False


def _private_root(root):
    """``<root>`` exists and only this user may enter it (mode 0700), before anything is uploaded into it."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    if os.stat(root).st_mode & 0o077:  # made by an older skyward, or by hand: nothing below is reachable now
        os.chmod(root, 0o700)


def check(params):
    _private_root(params["root"])
    env = os.path.join(params["root"], "envs", params["key"])
    cached = os.path.exists(os.path.join(env, READY_MARKER))
    online = None
    if not cached and params.get("probe_index"):
        online = _index_reachable(params.get("index_url") or DEFAULT_INDEX, params.get("index_timeout", 5))
    _say("SKYWARD-CHECK", {"cached": cached, "online": online})


# --- install ------------------------------------------------------------------------------------------------


class InstallFailed(Exception):
    pass


class _Log:
    def __init__(self, path, cwd=None):
        self.path = path
        self.cwd = cwd
        self.file = open(path, "w")  # noqa: SIM115  (open for the whole install; closed with the process)

    def write(self, text):
        self.file.write(text)
        self.file.flush()

    def run(self, argv, env=None):
        self.write("$ " + " ".join(argv) + "\n")
        started = time.time()
        # The working directory is <root>, not the login's home: a ~/json.py there must not shadow the stdlib
        # in the Pythons this runs (they also run with -I).
        code = subprocess.call(
            argv, stdout=self.file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.cwd
        )
        self.write(f"(exit {code} after {time.time() - started:.1f}s)\n")
        if code != 0:
            raise InstallFailed(f"{os.path.basename(argv[0])} exited with status {code}")

    def tail(self):
        self.file.flush()
        with open(self.path, errors="replace") as f:
            return "".join(f.readlines()[-TAIL_LINES:])


def _lock(path):
    """Hold an exclusive lock on `path` (a POSIX record lock: NFS clients forward it to the server)."""
    handle = open(path, "a+")  # noqa: SIM115  (the lock lives as long as this handle; the caller closes it)
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle, False
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EAGAIN):
            raise
    _step("wait", "another bootstrap of this image holds the lock; waiting for it")
    fcntl.lockf(handle, fcntl.LOCK_EX)
    return handle, True


def _extract_uv(root, wheel, log):
    """Take the uv binary out of its wheel (a zip) into ``<root>/bin``: no pip or index needed."""
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir, mode=0o700, exist_ok=True)
    version = os.path.basename(wheel).split("-")[1]
    target = os.path.join(bindir, "uv-" + version)
    if os.access(target, os.X_OK):
        return target
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith(".data/scripts/uv")]
        if not members:
            raise InstallFailed("no uv binary inside " + wheel)
        partial = f"{target}.{os.getpid()}.part"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with archive.open(members[0]) as source, os.fdopen(descriptor, "wb") as dest:
            shutil.copyfileobj(source, dest)
    os.replace(partial, target)  # atomic: a concurrent node sees either nothing or a whole binary
    log.write(f"uv installed at {target}\n")
    return target


def _sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_wheels(params, log):
    """Every uploaded wheel still has the SHA-256 its folder is named by (``wheels/<sha256>/<file>``).

    A wheel changed since its upload (tampered with, truncated by a full disk) is removed, so that the next
    start uploads it again, and this install is refused.
    """
    paths = list(params["local_wheels"]) + list(params["wheelhouse"])
    if params.get("uv_wheel"):
        paths.append(params["uv_wheel"])
    bad = []
    for path in paths:
        expected = os.path.basename(os.path.dirname(path))
        if _sha256(path) != expected:
            bad.append(path)
            os.unlink(path)
    if bad:
        raise InstallFailed(
            "uploaded wheels do not match their SHA-256 (changed since upload), removed so that the next start "
            "uploads them again: " + ", ".join(bad)
        )
    log.write(f"{len(paths)} uploaded wheels match their SHA-256\n")


def _dpkg_installed(package):
    if not shutil.which("dpkg-query"):
        return False
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    return "install ok installed" in status.stdout


def _apt(packages, facts, log):
    missing = [package for package in packages if not _dpkg_installed(package)]
    if not missing:
        log.write(f"apt: all of {' '.join(packages)} already installed\n")
        return
    if not shutil.which("apt-get"):
        raise InstallFailed(f"the image asks for apt packages {missing} but this node has no apt-get")
    if os.geteuid() == 0:
        prefix = []
    elif facts.get("sudo"):
        prefix = ["sudo", "-n"]
    else:
        raise InstallFailed(
            f"the image asks for apt packages {' '.join(missing)}, which are not installed, and installing them "
            "needs root (log in as root, give this user passwordless sudo, or install them beforehand)"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = prefix + ["apt-get", "install", "-y", "--no-install-recommends"] + missing
    try:
        log.run(install, env=env)
    except InstallFailed:
        log.run(prefix + ["apt-get", "update"], env=env)  # a fresh machine has no package lists yet
        log.run(install, env=env)


def _write_lines(path, lines):
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines)


def _find_links_dir(env_dir, wheel_paths):
    """A directory of links to exactly the wheels this install may use (uploads are content-addressed)."""
    links = env_dir + ".wheels"
    shutil.rmtree(links, ignore_errors=True)
    os.makedirs(links)
    for path in wheel_paths:
        name = os.path.basename(path)
        if not os.path.exists(os.path.join(links, name)):
            os.symlink(path, os.path.join(links, name))
    return links


def _system_ca_bundle():
    import ssl

    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _narrow_modes(env_dir):
    """uv sets the modes that wheels record (0711, 0644) regardless of the umask. The environment's directories
    were 0700 from their creation, so nothing was reachable meanwhile; this makes the files' modes say so too."""
    for directory, _subdirs, names in os.walk(env_dir):
        for name in names:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if not os.path.islink(path) and mode & 0o077:
                os.chmod(path, mode & 0o700)


def _create_env(params, env_dir, log):
    python = params["python"]
    offline = not params["online"]
    requirements = env_dir + ".requirements.txt"
    constraints = env_dir + ".constraints.txt"
    _write_lines(requirements, params["requirements"])
    _write_lines(constraints, params["constraints"])
    links = _find_links_dir(env_dir, params["wheelhouse"]) if offline else None
    env_python = os.path.join(env_dir, "bin", "python")
    if params["uv"]:
        uv = params["uv"]
        # uv trusts its own bundled roots by default; the node's index probe (urllib) trusted the system's, and
        # so must uv, or a node behind a TLS-inspecting proxy probes online and then cannot install.
        env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_SYSTEM_CERTS="1", UV_NATIVE_TLS="1")
        env.pop("VIRTUAL_ENV", None)
        log.run([uv, "venv", "--quiet", "--python", python, env_dir], env=env)
        base = [uv, "pip", "install", "--python", env_python]
        if offline:
            # Only what the client shipped: no index, no node configuration pointing elsewhere.
            base += ["--no-config", "--offline", "--no-index", "--find-links", links]
        elif params.get("index_url"):
            env["UV_DEFAULT_INDEX"] = params[
                "index_url"
            ]  # in the environment: an index URL may hold a password
        if params["requirements"]:
            log.run(base + ["-r", requirements, "-c", constraints], env=env)
        if params["local_wheels"]:
            log.run(base + ["--no-deps", "--reinstall"] + params["local_wheels"], env=env)
    else:
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        log.run([python, "-I", "-m", "venv", env_dir], env=env)
        base = [env_python, "-I", "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        if offline:
            base += ["--isolated", "--no-index", "--find-links", links]
        else:
            if params.get("index_url"):
                env["PIP_INDEX_URL"] = params["index_url"]  # in the environment: it may hold a password
            bundle = _system_ca_bundle()
            if bundle:
                base += ["--cert", bundle]  # old pips bundle certifi; trust what the node trusts instead
        if params["requirements"]:
            log.run(base + ["-r", requirements, "-c", constraints], env=env)
        if params["local_wheels"]:
            log.run(base + ["--no-deps", "--force-reinstall"] + params["local_wheels"], env=env)
    _narrow_modes(env_dir)
    # The agent must import; finding out now gives a clear log instead of a worker that dies at start. Importing
    # all it loads at start (not only the lazy `skyward` package) also writes their bytecode caches now, under
    # this script's umask 077, rather than later by the worker with the login's umask.
    log.run([env_python, "-I", "-c", "import skyward.worker.__main__"])
    for leftover in (requirements, constraints):
        os.unlink(leftover)
    if links:
        shutil.rmtree(links, ignore_errors=True)


def install(params):
    # SIGINT from the client (which gives up: Ctrl-C there) raises KeyboardInterrupt here: subprocess kills the
    # running installer, the lock is released, and the environment stays without its ready marker.
    _say("SKYWARD-PID", os.getpid())
    root = params["root"]
    _private_root(root)
    envs = os.path.join(root, "envs")
    os.makedirs(envs, mode=0o700, exist_ok=True)
    env_dir = os.path.join(envs, params["key"])
    marker = os.path.join(env_dir, READY_MARKER)
    handle, waited = _lock(env_dir + ".lock")
    try:
        if os.path.exists(marker):
            # Another process (maybe another host sharing this home) installed it while we waited.
            _say("SKYWARD-RESULT", {"outcome": "cached", "waited": waited})
            return
        log = _Log(env_dir + ".log", cwd=root)
        try:
            started = time.time()
            _verify_wheels(params, log)
            if os.path.exists(env_dir):
                log.write("removing the incomplete environment left by an interrupted install\n")
                shutil.rmtree(env_dir)
            if params["apt"]:
                _step("install", "apt: " + " ".join(params["apt"]))
                _apt(params["apt"], params["facts"], log)
            if params["installer"] == "uv" and not params["uv"]:
                params["uv"] = _extract_uv(root, params["uv_wheel"], log)
            mode = "online" if params["online"] else "offline, from the wheels the client shipped"
            _step("install", f"creating {env_dir} with {'uv' if params['uv'] else 'venv+pip'} ({mode})")
            _create_env(params, env_dir, log)
            with open(marker + ".part", "w") as f:
                json.dump(
                    {
                        "installed_at": time.time(),
                        "seconds": time.time() - started,
                        "requirements": params["requirements"],
                        "online": params["online"],
                    },
                    f,
                )
            os.replace(marker + ".part", marker)
        except Exception as exc:  # noqa: BLE001  (whatever failed becomes the report the client shows)
            log.write(f"\nbootstrap failed: {type(exc).__name__}: {exc}\n")
            sys.stdout.write(f"SKYWARD-FAILED {exc}\n{log.tail()}")
            sys.stdout.flush()
            sys.exit(1)
        _say("SKYWARD-RESULT", {"outcome": "installed", "waited": waited, "seconds": time.time() - started})
    finally:
        handle.close()


def _main(params):
    # Everything this script creates under ~/.skyward (and what the installers it runs create) is private:
    # directories 0700, files 0600, from the moment they exist.
    os.umask(0o077)
    command = params.pop("command")
    {"probe": probe, "check": check, "install": install}[command](params)
