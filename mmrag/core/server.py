"""The official Weaviate server, built from source (or its release binary), run as a local single node.

The server runs detached from the command that starts it, so `mmrag weaviate start` returns and later commands
(index, ask, the UI) share it. Its state lives in ``<data_dir>/weaviate``: the database, ``server.json`` (pid and
ports) and ``server.log``.

Its listeners (Weaviate 1.39's source): the REST API binds `--host` 127.0.0.1; gossip (memberlist, TCP and UDP),
raft and raft's internal RPC bind CLUSTER_BIND_ADDR 127.0.0.1. Two have no bind-address setting and listen on every
interface: the public gRPC API (GRPC_PORT), which requires the API key like REST, and the internal cluster API
(CLUSTER_DATA_BIND_PORT, HTTP and gRPC on one port: objects, shards, schema), which requires HTTP basic auth
(CLUSTER_BASIC_AUTH_USERNAME/PASSWORD). Both secrets are generated on first start and kept (mode 0600) in the data
dir, where only this user's mmrag reads them. The pprof and Prometheus listeners are off. Gossip and raft have no
authentication at all: loopback keeps them from other machines, not from other users of this one.
`listening_sockets` and `probe_without_credentials` show what each port answers.

A node of a local cluster (`mmrag.core.cluster`) is the same server with a `Membership`: its gossip, data, raft and
raft RPC ports are fixed (kept in the cluster's state file, so a node restarts where its peers look for it) and it
joins its peers on 127.0.0.1 (CLUSTER_IN_LOCALHOST, as Weaviate's own dev scripts run a cluster). Its listeners bind
as the single node's do: nothing more reaches beyond loopback than the gRPC and cluster API ports of each node.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from mmrag.core.errors import ServerInstallError, ServerStartError

WEAVIATE_VERSION = "1.39.0"
"""The one pinned Weaviate version: the Go build, the release binary and docker-compose.yml all use it."""

GO_PACKAGE = "github.com/weaviate/weaviate/cmd/weaviate-server"
RELEASE_URL = "https://github.com/weaviate/weaviate/releases/download/v{v}/weaviate-v{v}-{system}-{machine}.{ext}"
DOCKER_HINT = (
    "Or run Weaviate with Docker instead: `docker compose up -d weaviate`, then "
    "`export MMRAG_WEAVIATE_URL=http://localhost:8080 MMRAG_WEAVIATE_API_KEY=<your WEAVIATE_API_KEY>`."
)
INHERITED_ENVIRONMENT = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")
"""The only variables the local server inherits from the command that starts it: no cloud keys, no mmrag secrets."""
CLUSTER_USER = "mmrag-cluster"
"""User name of the internal cluster API's basic auth (the password is generated, see `LocalWeaviate`)."""


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


@dataclass(frozen=True)
class Membership:
    """A node's place in a local cluster: its name and gossip port (data, raft and raft RPC are the next three),
    and its peers' gossip ports (CLUSTER_JOIN) and raft addresses (RAFT_JOIN, every node's ``name:raft port``)."""

    name: str
    gossip_port: int
    peer_gossip_ports: tuple[int, ...]
    raft_join: tuple[str, ...]

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(range(self.gossip_port, self.gossip_port + 4))


class LocalWeaviate:
    """A Weaviate node on 127.0.0.1 with its data in ``data_dir / 'weaviate'`` (or `root`): a single node, or with
    a `Membership` one node of a local cluster. Its API key and cluster password live in `secrets_dir` (default:
    its root), which a cluster's nodes share."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        http_port: int,
        grpc_port: int,
        *,
        root: Path | None = None,
        secrets_dir: Path | None = None,
        membership: Membership | None = None,
    ) -> None:
        self.binary = binary
        self.root = root or data_dir / "weaviate"
        self.secrets_dir = secrets_dir or self.root
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.membership = membership

    @property
    def state_file(self) -> Path:
        return self.root / "server.json"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def key_file(self) -> Path:
        return self.secrets_dir / "api-key"

    @property
    def cluster_password_file(self) -> Path:
        return self.secrets_dir / "cluster-password"

    def api_key(self) -> str:
        """The local server's API key (REST and gRPC), created (0600) on first use."""
        return _secret(self.key_file)

    def cluster_password(self) -> str:
        """The internal cluster API's password for user `CLUSTER_USER`, created (0600) on first use."""
        return _secret(self.cluster_password_file)

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
        pid = self.launch()
        self.wait_ready(pid, timeout)
        return self.status()

    def launch(self) -> int:
        """Start the server unless it runs already, without waiting for it: its pid (a cluster's nodes are ready
        only once enough of them run, so they are all launched before any is waited for)."""
        state = self.status()
        if state.running and state.pid is not None:
            return state.pid
        if not self.binary.is_file():
            raise ServerStartError(f"the Weaviate server is not installed at {self.binary}: run `make setup`")
        self._check_ports_free()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        return pid

    def wait_ready(self, pid: int, timeout: float = 120.0) -> None:
        """Wait until the server answers ready; ServerStartError when it exits or takes longer than `timeout`."""
        _, http_port, _ = self._recorded()
        self._wait_ready(pid, http_port, timeout)

    def _check_ports_free(self) -> None:
        ports = [("MMRAG_WEAVIATE_HTTP_PORT", self.http_port), ("MMRAG_WEAVIATE_GRPC_PORT", self.grpc_port)]
        if self.membership is not None:
            ports = [("", port) for port in (self.http_port, self.grpc_port, *self.membership.ports)]
        for name, port in ports:
            if not _port_free(port):
                fix = f"or set {name} to another port" if name else "(a cluster's nodes keep their ports)"
                raise ServerStartError(f"port {port} on 127.0.0.1 is in use: free it {fix}")

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
        """The server's whole environment: INHERITED_ENVIRONMENT and its settings, nothing else of ours."""
        inherited = {name: os.environ[name] for name in INHERITED_ENVIRONMENT if name in os.environ}
        return inherited | self._settings()

    def _node_name(self) -> str:
        """The node's name, fixed when its data is created: Weaviate keeps it in the data, so a data dir started
        later on another HTTP port must keep its name (earlier versions named it after the port they used)."""
        path = self.root / "node-name"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            name = f"mmrag_{self.http_port}"
            path.write_text(name + "\n")
            return name

    def _settings(self) -> dict[str, str]:
        if self.membership is None:
            gossip = free_port_block(4)  # gossip, data (= gossip + 1), raft, raft rpc: as weaviate's embedded mode
            hostname = self._node_name()
            topology = {
                "RAFT_BOOTSTRAP_EXPECT": "1",
                "RAFT_TIMEOUTS_MULTIPLIER": "1",  # one node: no network delay to tolerate; ready in ~3 s, not ~10
                "RAFT_JOIN": f"{hostname}:{gossip + 2}",
            }
        else:
            gossip, hostname = self.membership.gossip_port, self.membership.name
            topology = {
                "CLUSTER_JOIN": ",".join(f"127.0.0.1:{port}" for port in self.membership.peer_gossip_ports),
                "RAFT_BOOTSTRAP_EXPECT": str(len(self.membership.raft_join)),
                "RAFT_TIMEOUTS_MULTIPLIER": "1",  # loopback: no network delay; a new leader in seconds after a kill
                "RAFT_JOIN": ",".join(self.membership.raft_join),
                "ASYNC_REPLICATION_FREQUENCY": "1s",
                "ASYNC_REPLICATION_FREQUENCY_WHILE_PROPAGATING": "1s",
                "ASYNC_REPLICATION_PROPAGATION_DELAY": "1s",
            }
        return {
            "PERSISTENCE_DATA_PATH": str(self.root / "data"),
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
            "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_ALLOWED_KEYS": self.api_key(),
            "AUTHENTICATION_APIKEY_USERS": "mmrag",
            "AUTHORIZATION_ADMINLIST_ENABLED": "false",
            "GRPC_PORT": str(self.grpc_port),
            # The cluster API listens on every interface, with no bind-address setting: basic auth guards it.
            "CLUSTER_BASIC_AUTH_USERNAME": CLUSTER_USER,
            "CLUSTER_BASIC_AUTH_PASSWORD": self.cluster_password(),
            "CLUSTER_IN_LOCALHOST": "true",
            "CLUSTER_BIND_ADDR": "127.0.0.1",
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_HOSTNAME": hostname,
            "CLUSTER_GOSSIP_BIND_PORT": str(gossip),
            "CLUSTER_DATA_BIND_PORT": str(gossip + 1),
            "RAFT_PORT": str(gossip + 2),
            "RAFT_INTERNAL_RPC_PORT": str(gossip + 3),
            **topology,
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


def _secret(path: Path) -> str:
    """The secret kept in `path`, created (mode 0600, never over an existing file) on first use."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    secret = path.read_text().strip()
    if not secret:
        raise ServerStartError(f"{path} is empty: delete it and a new secret is generated")
    return secret


def _port_free(port: int) -> bool:
    """True unless something listens on `port` at 127.0.0.1 or on every interface (where gRPC binds).

    SO_REUSEADDR, as servers set it: the TIME-WAIT connections a crashed server leaves behind do not hold the port.
    """
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(n: int) -> int:
    """The first of `n` consecutive free ports."""
    for _ in range(100):
        first = free_port()
        if first + n <= 65535 and all(_port_free(first + i) for i in range(n)):
            return first
    raise ServerStartError(f"no block of {n} free ports found on 127.0.0.1")


@dataclass(frozen=True)
class ListeningSocket:
    """A TCP port a process listens on, with the address it is bound to ("0.0.0.0" or "::": every interface)."""

    address: str
    port: int

    @property
    def loopback_only(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return ip.is_loopback


def listening_sockets(pid: int) -> list[ListeningSocket]:
    """The TCP ports process `pid` listens on, with their bind addresses, sorted by port (Linux only).

    Matches the socket inodes in /proc/<pid>/fd with the LISTEN rows of the process's /proc/<pid>/net/tcp and tcp6.
    UDP is left out (Weaviate's only UDP socket is gossip's, on the gossip TCP port's address and number).
    Raises OSError when /proc/<pid> cannot be read: no such process, or another user's.
    """
    inodes = _socket_inodes(pid)
    found = {
        ListeningSocket(address, port)
        for table in ("tcp", "tcp6")
        for address, port, inode in _listen_rows(Path(f"/proc/{pid}/net/{table}"))
        if inode in inodes
    }
    return sorted(found, key=lambda s: (s.port, s.address))


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed since the listing
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _listen_rows(table: Path) -> Iterator[tuple[str, int, int]]:
    """(address, port, inode) of each LISTEN row of a /proc/net/tcp or tcp6 table."""
    if not table.exists():  # no IPv6
        return
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":  # TCP_LISTEN
            continue
        address, port = fields[1].split(":")
        yield _proc_address(address), int(port, 16), int(fields[9])


def _proc_address(hex_words: str) -> str:
    """An address as /proc/net/tcp writes it: 32-bit words of network-order bytes, printed as host-order numbers."""
    words = (int(hex_words[i : i + 8], 16) for i in range(0, len(hex_words), 8))
    return str(ipaddress.ip_address(b"".join(struct.pack("=I", w) for w in words)))


HTTP_PROBES = (
    ("GET", "/v1/schema", "/v1/schema"),
    ("GET", "/v1/nodes?output=verbose", "/v1/nodes"),
    ("GET", "/nodes/status?output=verbose", "/nodes/status"),
    ("GET", "/cluster/users/db/", "/cluster/users/db"),
    ("DELETE", "/indices/Probe/shards/probe/objects/00000000-0000-0000-0000-000000000000", "/indices/.../objects/..."),
)
"""(method, path, label): requests to the REST API (/v1/...) and to the internal cluster API that need credentials."""
GRPC_PROBES = (
    ("/weaviate.v1.Weaviate/Search", b"", "Search"),
    ("/weaviate.internal.cluster.ClusterService/Query", b"\x08\x02", "raft ClusterService.Query(schema)"),
)
"""(method, serialized request, label): Weaviate's public gRPC API, then raft's internal RPC (a read-only call)."""


def probe_without_credentials(host: str, port: int, timeout: float = 2.0) -> str:
    """What `host:port` answers a client without credentials, in a few words (for a table of listeners).

    An HTTP port: the status of each of HTTP_PROBES, e.g. "HTTP 401: GET /v1/schema, ...". Else a gRPC port: the
    status and message (or the answer's size) of the first of GRPC_PROBES it implements; Weaviate refuses a missing
    API key with "UNKNOWN (extract auth: unauthorized ...)", not UNAUTHENTICATED. Else what the raw TCP port does:
    raft and gossip speak their own binary protocols. Nothing listening: "refused (...)".
    """
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"refused ({e.strerror or type(e).__name__})"
    return _probe_http(host, port, timeout) or _probe_grpc(host, port, timeout) or _probe_tcp(host, port, timeout)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _probe_http(host: str, port: int, timeout: float) -> str | None:
    by_status: dict[int, list[str]] = {}
    with httpx.Client(base_url=f"http://{_netloc(host, port)}", timeout=timeout, trust_env=False) as http:
        for method, path, label in HTTP_PROBES:
            try:
                status = http.request(method, path).status_code
            except httpx.HTTPError:  # not HTTP/1.1: gRPC, raft, gossip
                return None
            by_status.setdefault(status, []).append(f"{method} {label}")
    return "HTTP " + "; ".join(f"{status}: {', '.join(calls)}" for status, calls in sorted(by_status.items()))


def _probe_grpc(host: str, port: int, timeout: float) -> str | None:
    import grpc  # a dependency of weaviate-client; only this probe needs it

    with grpc.insecure_channel(_netloc(host, port), options=[("grpc.enable_http_proxy", 0)]) as channel:
        for method, request, label in GRPC_PROBES:
            try:
                reply = channel.unary_unary(method)(request, timeout=timeout)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                    continue
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return None  # no HTTP/2 here
                return f"gRPC {label}: {e.code().name} ({(e.details() or '')[:60]})"
            return f"gRPC {label}: answered without credentials ({len(reply)} bytes)"
    return "gRPC: UNIMPLEMENTED for " + ", ".join(label for _, _, label in GRPC_PROBES)


def _probe_tcp(host: str, port: int, timeout: float) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            first = s.recv(64)
        except TimeoutError:
            return "TCP, not HTTP or gRPC: accepts a connection and waits, silent"
    return f"TCP, not HTTP or gRPC: sends {len(first)} bytes unasked" if first else "TCP, not HTTP or gRPC: hangs up"
