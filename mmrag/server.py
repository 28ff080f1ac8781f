"""The official Weaviate server, built from source (or its release binary), run as a local single node.

The server runs detached from the command that starts it, so `mmrag weaviate start` returns and later commands
(index, ask, the UI) share it. Its state lives in ``<data_dir>/weaviate``: the database, ``server.json`` (pid and
ports) and ``server.log``.

Weaviate's REST API binds to 127.0.0.1, but its gRPC API and internal cluster ports have no bind-address setting
and listen on every interface. So the local server does not allow anonymous access: it requires an API key that is
generated on first start and kept (mode 0600) in the data dir, where only this user's mmrag reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from mmrag.errors import ServerInstallError, ServerStartError

WEAVIATE_VERSION = "1.39.0"
"""The one pinned Weaviate version: the Go build, the release binary and docker-compose.yml all use it."""

GO_PACKAGE = "github.com/weaviate/weaviate/cmd/weaviate-server"
RELEASE_URL = "https://github.com/weaviate/weaviate/releases/download/v{v}/weaviate-v{v}-{system}-{machine}.{ext}"
DOCKER_HINT = (
    "Or run Weaviate with Docker instead: `docker compose up -d weaviate`, then "
    "`export MMRAG_WEAVIATE_URL=http://localhost:8080 MMRAG_WEAVIATE_API_KEY=<key from docker-compose.yml>`."
)


def binary_path(cache_dir: Path, version: str = WEAVIATE_VERSION) -> Path:
    return cache_dir / "weaviate" / f"v{version}" / "weaviate-server"


def install(cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Build (or, without Go, download) the pinned server once; later calls return the existing binary."""
    target = binary_path(cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    if shutil.which("go"):
        log(f"Building Weaviate {WEAVIATE_VERSION} from the Go module proxy (the first build takes minutes)...")
        try:
            _go_install(target)
            return target
        except ServerInstallError as e:
            errors.append(str(e))
    log(f"Downloading the Weaviate {WEAVIATE_VERSION} release binary...")
    try:
        _download_release(target)
        return target
    except ServerInstallError as e:
        errors.append(str(e))
    raise ServerInstallError(f"could not install Weaviate {WEAVIATE_VERSION}: {' | '.join(errors)}. {DOCKER_HINT}")


def _go_install(target: Path) -> None:
    # The release builds' flags: static (no cgo), netgo resolver, stripped, reproducible paths.
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(target.parent), "GOFLAGS": "-trimpath"}
    cmd = ["go", "install", "-tags", "netgo", "-ldflags", "-s -w", f"{GO_PACKAGE}@v{WEAVIATE_VERSION}"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-3:]
        raise ServerInstallError(f"`{' '.join(cmd)}` failed: {' / '.join(tail)}")
    if not target.is_file():
        raise ServerInstallError(f"go install finished but {target} is missing")


def _download_release(target: Path) -> None:
    system = platform.system().lower()
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if system != "linux" or machine is None:
        raise ServerInstallError(f"no release binary for {platform.system()}/{platform.machine()}")
    url = RELEASE_URL.format(v=WEAVIATE_VERSION, system="Linux", machine=machine, ext="tar.gz")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "weaviate.tgz"
        try:
            urllib.request.urlretrieve(url, archive)
            with tarfile.open(archive) as tar:
                tar.extract("weaviate", path=tmp, filter="data")
        except (OSError, tarfile.TarError, KeyError) as e:
            raise ServerInstallError(f"download of {url} failed: {e}") from e
        shutil.move(Path(tmp) / "weaviate", target)
    target.chmod(0o755)


@dataclass(frozen=True)
class ServerState:
    """What `mmrag weaviate status` reports."""

    running: bool
    ready: bool
    pid: int | None
    http_port: int
    grpc_port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class LocalWeaviate:
    """A single-node Weaviate on 127.0.0.1 with its data in ``data_dir / 'weaviate'``."""

    def __init__(self, binary: Path, data_dir: Path, http_port: int, grpc_port: int) -> None:
        self.binary = binary
        self.root = data_dir / "weaviate"
        self.http_port = http_port
        self.grpc_port = grpc_port

    @property
    def state_file(self) -> Path:
        return self.root / "server.json"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def key_file(self) -> Path:
        return self.root / "api-key"

    def api_key(self) -> str:
        """The local server's API key, created (0600) on first use."""
        if not self.key_file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        return self.key_file.read_text().strip()

    def status(self) -> ServerState:
        pid, http_port, grpc_port = self._recorded()
        running = pid is not None and _is_weaviate(pid)
        return ServerState(
            running=running,
            ready=running and _ready(http_port),
            pid=pid if running else None,
            http_port=http_port,
            grpc_port=grpc_port,
            data_dir=self.root,
        )

    def start(self, timeout: float = 120.0) -> ServerState:
        """Start the server unless it runs already, and wait until it is ready."""
        state = self.status()
        if state.running:
            self._wait_ready(state.pid, state.http_port, timeout)
            return self.status()
        if not self.binary.is_file():
            raise ServerStartError(f"the Weaviate server is not installed at {self.binary}: run `make setup`")
        for name, port in (
            ("MMRAG_WEAVIATE_HTTP_PORT", self.http_port),
            ("MMRAG_WEAVIATE_GRPC_PORT", self.grpc_port),
        ):
            if not _port_free(port):
                raise ServerStartError(f"port {port} on 127.0.0.1 is in use: free it or set {name} to another port")
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.http_port),
            "--scheme",
            "http",
            "--read-timeout=600s",
            "--write-timeout=600s",
        ]
        # A new session: the server outlives the command that started it and ignores its Ctrl-C.
        pid = os.posix_spawn(
            argv[0],
            argv,
            self._environment(),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        self.state_file.write_text(json.dumps({"pid": pid, "http_port": self.http_port, "grpc_port": self.grpc_port}))
        self._wait_ready(pid, self.http_port, timeout)
        return self.status()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`); False when it was not running."""
        state = self.status()
        if not state.running or state.pid is None:
            self.state_file.unlink(missing_ok=True)
            return False
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_weaviate(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_weaviate(state.pid):
            os.kill(state.pid, signal.SIGKILL)
        _reap(state.pid)
        self.state_file.unlink(missing_ok=True)
        return True

    def _recorded(self) -> tuple[int | None, int, int]:
        try:
            info = json.loads(self.state_file.read_text())
            return int(info["pid"]), int(info["http_port"]), int(info["grpc_port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, self.http_port, self.grpc_port

    def _environment(self) -> dict[str, str]:
        gossip = _free_port_block(4)  # gossip, data (= gossip + 1), raft, raft rpc: as weaviate's embedded mode
        hostname = f"mmrag_{self.http_port}"
        return {
            **os.environ,
            "PERSISTENCE_DATA_PATH": str(self.root / "data"),
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
            "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_ALLOWED_KEYS": self.api_key(),
            "AUTHENTICATION_APIKEY_USERS": "mmrag",
            "AUTHORIZATION_ADMINLIST_ENABLED": "false",
            "GRPC_PORT": str(self.grpc_port),
            "CLUSTER_IN_LOCALHOST": "true",
            "CLUSTER_BIND_ADDR": "127.0.0.1",
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_HOSTNAME": hostname,
            "CLUSTER_GOSSIP_BIND_PORT": str(gossip),
            "CLUSTER_DATA_BIND_PORT": str(gossip + 1),
            "RAFT_PORT": str(gossip + 2),
            "RAFT_INTERNAL_RPC_PORT": str(gossip + 3),
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "RAFT_TIMEOUTS_MULTIPLIER": "1",  # one node: no network delay to tolerate; ready in ~3 s, not ~10
            "RAFT_JOIN": f"{hostname}:{gossip + 2}",
            "DEFAULT_VECTORIZER_MODULE": "none",
            "ENABLE_MODULES": "",
            "DISABLE_TELEMETRY": "true",
            "GO_PROFILING_DISABLE": "true",  # its pprof listener would bind every interface
            "PROMETHEUS_MONITORING_ENABLED": "false",
            "QUERY_DEFAULTS_LIMIT": "25",
            "LIMIT_RESOURCES": "true",
        }

    def _wait_ready(self, pid: int | None, http_port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ready(http_port):
                return
            if pid is None or not _is_weaviate(pid):
                _reap(pid)
                raise ServerStartError(f"Weaviate exited during start-up: {self._log_tail()}")
            time.sleep(0.2)
        raise ServerStartError(f"Weaviate was not ready within {timeout:.0f} s (log: {self.log_file})")

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " / ".join(lines[-3:]) + f" (log: {self.log_file})"


def _ready(http_port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{http_port}/v1/.well-known/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _is_weaviate(pid: int) -> bool:
    """True when `pid` is alive and is a weaviate server (guards against a recycled pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # not Linux: trust the pid
        return platform.system() != "Linux"
    try:
        text = cmdline.read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return b"weaviate" in text and not zombie


def _reap(pid: int | None) -> None:
    """Collect the exit status when this process started the server (no zombie left behind)."""
    if pid is None:
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # gRPC binds all interfaces
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_port_block(n: int) -> int:
    """The first of `n` consecutive free ports."""
    for _ in range(100):
        first = free_port()
        if first + n <= 65535 and all(_port_free(first + i) for i in range(n)):
            return first
    raise ServerStartError(f"no block of {n} free ports found on 127.0.0.1")
