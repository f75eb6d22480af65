#!/usr/bin/env python3
"""Bring up Parley's real servers on a machine without Docker.

Apache Kafka (KRaft, one combined broker/controller node) runs from jars that Maven
resolves from Maven Central onto the machine's JDK; FerretDB (a MongoDB wire-protocol
server) is built from the Go module proxy with the machine's Go toolchain and runs on its
SQLite backend (PostgreSQL as an option). Downloads and builds are cached, so a second
start takes seconds; data is kept across restarts.

Standard library only: this script runs before any virtualenv exists.

    python3 deploy/local/stack.py install          # fetch jars, build FerretDB (cached)
    python3 deploy/local/stack.py start [kafka|ferretdb]
    python3 deploy/local/stack.py status
    python3 deploy/local/stack.py logs kafka -n 50
    python3 deploy/local/stack.py stop
    python3 deploy/local/stack.py env               # shell lines pointing services at it

Every setting has an environment variable (see ``Config``) and a flag.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LOG4J_VERSION = "2.24.3"


class StackError(Exception):
    """A problem the user has to fix; its message says what and how."""


# --------------------------------------------------------------------------- config


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass
class Config:
    """Where things live and which ports they use; each field has an environment variable."""

    stack_dir: Path  # PARLEY_STACK_DIR: data, logs and pid files
    cache_dir: Path  # PARLEY_CACHE_DIR: Kafka jars and the FerretDB binary, shared by stacks
    kafka_version: str  # PARLEY_KAFKA_VERSION
    kafka_port: int  # PARLEY_KAFKA_PORT
    controller_port: int  # PARLEY_KAFKA_CONTROLLER_PORT
    kafka_heap: str  # PARLEY_KAFKA_HEAP
    ferretdb_version: str  # PARLEY_FERRETDB_VERSION
    ferretdb_port: int  # PARLEY_FERRETDB_PORT
    ferretdb_debug_port: int  # PARLEY_FERRETDB_DEBUG_PORT (0 turns the listener off)
    ferretdb_backend: str  # PARLEY_FERRETDB_BACKEND: sqlite | postgresql
    postgresql_url: str  # PARLEY_FERRETDB_POSTGRESQL_URL
    host: str = "127.0.0.1"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        return cls(
            stack_dir=Path(args.stack_dir).resolve(),
            cache_dir=Path(args.cache_dir).expanduser().resolve(),
            kafka_version=args.kafka_version,
            kafka_port=args.kafka_port,
            controller_port=args.controller_port,
            kafka_heap=args.kafka_heap,
            ferretdb_version=args.ferretdb_version,
            ferretdb_port=args.ferretdb_port,
            ferretdb_debug_port=args.ferretdb_debug_port,
            ferretdb_backend=args.ferretdb_backend,
            postgresql_url=args.postgresql_url,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://{self.host}:{self.ferretdb_port}/"

    @property
    def kafka_home(self) -> Path:
        return self.cache_dir / f"kafka-{self.kafka_version}"

    @property
    def ferretdb_home(self) -> Path:
        return self.cache_dir / f"ferretdb-{self.ferretdb_version}"

    @property
    def ferretdb_bin(self) -> Path:
        return self.ferretdb_home / "bin" / "ferretdb"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stack",
        description="Start, stop and inspect Parley's local Kafka and FerretDB servers.",
    )
    p.add_argument("--stack-dir", default=_env("PARLEY_STACK_DIR", str(REPO / ".parley" / "stack")))
    p.add_argument("--cache-dir", default=_env("PARLEY_CACHE_DIR", "~/.cache/parley"))
    p.add_argument("--kafka-version", default=_env("PARLEY_KAFKA_VERSION", "4.4.0"))
    p.add_argument("--kafka-port", type=int, default=int(_env("PARLEY_KAFKA_PORT", "9092")))
    p.add_argument(
        "--controller-port", type=int, default=int(_env("PARLEY_KAFKA_CONTROLLER_PORT", "9093"))
    )
    p.add_argument("--kafka-heap", default=_env("PARLEY_KAFKA_HEAP", "1g"))
    p.add_argument("--ferretdb-version", default=_env("PARLEY_FERRETDB_VERSION", "v1.24.2"))
    p.add_argument("--ferretdb-port", type=int, default=int(_env("PARLEY_FERRETDB_PORT", "27017")))
    p.add_argument(
        "--ferretdb-debug-port", type=int, default=int(_env("PARLEY_FERRETDB_DEBUG_PORT", "28088"))
    )
    p.add_argument(
        "--ferretdb-backend",
        choices=("sqlite", "postgresql"),
        default=_env("PARLEY_FERRETDB_BACKEND", "sqlite"),
    )
    p.add_argument(
        "--postgresql-url",
        default=_env("PARLEY_FERRETDB_POSTGRESQL_URL", "postgres://127.0.0.1:5432/ferretdb"),
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="fetch the Kafka jars and build FerretDB (cached)")
    for name, text in (
        ("start", "start the servers and wait until they answer"),
        ("stop", "stop the servers"),
        ("restart", "stop, then start"),
        ("status", "say what runs; exit 1 if anything asked for is down"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("servers", nargs="*", metavar="kafka|ferretdb", default=[])
    lp = sub.add_parser("logs", help="print the end of a server's log")
    lp.add_argument("server", choices=("kafka", "ferretdb"))
    lp.add_argument("-n", "--lines", type=int, default=40)
    sub.add_parser("env", help="print shell lines that point Parley at this stack")
    return p


# --------------------------------------------------------------------------- tools


def _require(tool: str, why: str, apt: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise StackError(
            f"'{tool}' is not installed, and it is needed to {why}. "
            f"Install it (Debian/Ubuntu: apt-get install -y {apt}) and run this again."
        )
    return path


def _java() -> str:
    java = _require("java", "run the Kafka broker", "openjdk-17-jre-headless")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)', out)
    if m and int(m.group(1)) < 17:
        raise StackError(f"Kafka 4 needs Java 17 or newer; '{java}' is Java {m.group(1)}.")
    return java


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise StackError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")


def _say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# --------------------------------------------------------------------------- install


KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>parley.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def install_kafka(cfg: Config) -> Path:
    """Resolve the Kafka broker's jars from Maven Central into the cache; return the lib dir."""
    home = cfg.kafka_home
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    mvn = _require("mvn", "fetch the Kafka jars from Maven Central", "maven")
    _java()
    _say(f"resolving Apache Kafka {cfg.kafka_version} jars from Maven Central (first time only)")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(KAFKA_POM.format(kafka=cfg.kafka_version, log4j=LOG4J_VERSION))
    if libs.exists():
        shutil.rmtree(libs)
    _run(
        [
            mvn, "-B", "-q", "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        ],
        cwd=home,
    )
    if not any(libs.glob(f"kafka_2.13-{cfg.kafka_version}.jar")):
        raise StackError(f"Maven finished but kafka_2.13-{cfg.kafka_version}.jar is not in {libs}")
    (home / ".complete").write_text(cfg.kafka_version + "\n")
    return libs


def install_ferretdb(cfg: Config) -> Path:
    """Build FerretDB from the Go module proxy into the cache; return the binary.

    ``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` builds, but the binary
    panics at start: FerretDB's ``build/version`` package requires a ``version.txt`` that its
    release tooling generates and the module zip does not carry. So the same module source is
    downloaded with ``go mod download``, that one file is written, and ``go install`` runs in
    the copy.
    """
    binary = cfg.ferretdb_bin
    if binary.exists() and (cfg.ferretdb_home / ".complete").exists():
        return binary
    go = _require("go", "build FerretDB from the Go module proxy", "golang-go (Go 1.24 or newer)")
    module = f"github.com/FerretDB/FerretDB@{cfg.ferretdb_version}"
    _say(f"building FerretDB {cfg.ferretdb_version} from the Go module proxy (first time only)")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
    proc = subprocess.run(
        [go, "mod", "download", "-json", module], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise StackError(f"go mod download {module} failed:\n{proc.stdout}{proc.stderr}")
    source = Path(json.loads(proc.stdout)["Dir"])
    home = cfg.ferretdb_home
    src = home / "src"
    if src.exists():
        shutil.rmtree(src)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, src)
    for path in src.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    (src / "build" / "version" / "version.txt").write_text(cfg.ferretdb_version + "\n")
    (home / "bin").mkdir(exist_ok=True)
    _run([go, "install", "-trimpath", "./cmd/ferretdb"], cwd=src, env=dict(env, GOBIN=str(home / "bin")))
    shutil.rmtree(src)
    (home / ".complete").write_text(cfg.ferretdb_version + "\n")
    return binary


# --------------------------------------------------------------------------- probes


def _port_open(host: str, port: int) -> bool:
    """Whether something listens on ``port``.

    A port inside the ephemeral range can be "connected" to itself when nothing listens
    (TCP simultaneous open); that is not a listener.
    """
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.getsockname() != sock.getpeername()
    except OSError:
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def kafka_answers(host: str, port: int) -> bool:
    """Send a Kafka ApiVersions request and check for an error-free answer."""
    client = b"parley-stack"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv_exact(s, 4))[0]
            payload = _recv_exact(s, size)
        corr, err = struct.unpack(">ih", payload[:6])
        return corr == 7 and err == 0
    except OSError:
        return False


def _bson_ping() -> bytes:
    def elem_int(name: str, v: int) -> bytes:
        return b"\x10" + name.encode() + b"\x00" + struct.pack("<i", v)

    def elem_str(name: str, v: str) -> bytes:
        raw = v.encode() + b"\x00"
        return b"\x02" + name.encode() + b"\x00" + struct.pack("<i", len(raw)) + raw

    body = elem_int("ping", 1) + elem_str("$db", "admin")
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def mongo_answers(host: str, port: int) -> bool:
    """Send a MongoDB OP_MSG ``{ping: 1}`` and check the reply says ``ok``."""
    doc = _bson_ping()
    msg = struct.pack("<I", 0) + b"\x00" + doc  # flagBits, section kind 0, body
    header = struct.pack("<iiii", 16 + len(msg), 1, 0, 2013)
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(header + msg)
            size = struct.unpack("<i", _recv_exact(s, 4))[0]
            reply = _recv_exact(s, size - 4)
        return b"ok\x00" in reply and reply[8:12] == struct.pack("<i", 2013)
    except OSError:
        return False


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    cfg: Config

    @property
    def dir(self) -> Path:
        return self.cfg.stack_dir / self.name

    @property
    def pidfile(self) -> Path:
        return self.dir / "pid"

    @property
    def logfile(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def port(self) -> int:
        return self.cfg.kafka_port if self.name == "kafka" else self.cfg.ferretdb_port

    def ports(self) -> list[int]:
        """Every port this server listens on."""
        if self.name == "kafka":
            return [self.cfg.kafka_port, self.cfg.controller_port]
        return [p for p in (self.cfg.ferretdb_port, self.cfg.ferretdb_debug_port) if p]

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        try:  # a zombie or a reused pid is not our server
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return None
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            marker = b"kafka.Kafka" if self.name == "kafka" else b"ferretdb"
            # right after exec the kernel may show an empty command line for a moment
            if cmdline and marker not in cmdline:
                return None
        except OSError:
            pass
        return pid

    def answers(self) -> bool:
        if self.name == "kafka":
            return kafka_answers(self.cfg.host, self.cfg.kafka_port)
        return mongo_answers(self.cfg.host, self.cfg.ferretdb_port)

    # -- start

    def command(self) -> list[str]:
        if self.name == "kafka":
            return self._kafka_command()
        return self._ferretdb_command()

    def _kafka_command(self) -> list[str]:
        cfg = self.cfg
        libs = install_kafka(cfg)
        java = _java()
        data = self.dir / "data"
        props = self.dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "# written by deploy/local/stack.py on every start; edit the script, not this",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{cfg.host}:{cfg.controller_port}",
                    f"listeners=PLAINTEXT://{cfg.host}:{cfg.kafka_port},"
                    f"CONTROLLER://{cfg.host}:{cfg.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{cfg.host}:{cfg.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=3",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=5",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "min.insync.replicas=1",
                    "",
                ]
            )
        )
        log4j = self.dir / "log4j2.properties"
        log4j.write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.out.type = Console",
                    "appender.out.name = STDOUT",
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.out.ref = STDOUT",
                    "logger.kafka.name = kafka",
                    "logger.kafka.level = INFO",
                    "logger.state.name = state.change.logger",
                    "logger.state.level = WARN",
                    "logger.clients.name = org.apache.kafka",
                    "logger.clients.level = WARN",
                    "",
                ]
            )
        )
        classpath = f"{libs}/*"
        if not (data / "meta.properties").exists():
            data.mkdir(parents=True, exist_ok=True)
            cluster_id = _kafka_cluster_id()
            _say(f"formatting Kafka storage in {data} (cluster {cluster_id})")
            _run(
                [
                    java, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath,
                    "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props),
                ]
            )
        return [
            java,
            f"-Xms{cfg.kafka_heap}",
            f"-Xmx{cfg.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]

    def _ferretdb_command(self) -> list[str]:
        cfg = self.cfg
        binary = install_ferretdb(cfg)
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        debug = f"{cfg.host}:{cfg.ferretdb_debug_port}" if cfg.ferretdb_debug_port else ""
        cmd = [
            str(binary),
            f"--listen-addr={cfg.host}:{cfg.ferretdb_port}",
            f"--debug-addr={debug}",
            f"--state-dir={self.dir}",
            "--telemetry=disable",
            "--log-level=warn",
        ]
        if cfg.ferretdb_backend == "sqlite":
            cmd += ["--handler=sqlite", f"--sqlite-url=file:{data}/"]
        else:
            cmd += ["--handler=postgresql", f"--postgresql-url={cfg.postgresql_url}"]
        return cmd

    def start(self, timeout: float = 90.0) -> None:
        pid = self.pid()
        if pid and self.answers():
            _say(f"{self.name} already running (pid {pid}) on {self.cfg.host}:{self.port}")
            return
        if pid:
            _say(f"{self.name} has pid {pid} but does not answer yet; waiting")
        else:
            for port in self.ports():
                if _port_open(self.cfg.host, port):
                    raise StackError(
                        f"port {port} is taken by another program, so {self.name} cannot "
                        f"listen there; stop it or choose another port (see --help)"
                    )
            self.dir.mkdir(parents=True, exist_ok=True)
            cmd = self.command()
            log = self.logfile.open("ab")
            log.write(f"\n==== start {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ====\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
            )
            self.pidfile.write_text(f"{proc.pid}\n")
            pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                _say(f"{self.name} is up (pid {pid}) on {self.cfg.host}:{self.port}")
                return
            if self.pid() is None:
                raise StackError(
                    f"{self.name} exited during start; last lines of {self.logfile}:\n"
                    + _tail(self.logfile, 25)
                )
            time.sleep(0.3)
        raise StackError(
            f"{self.name} did not answer within {timeout:.0f}s; last lines of {self.logfile}:\n"
            + _tail(self.logfile, 25)
        )

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            _say(f"{self.name} is not running")
            self.pidfile.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            _say(f"{self.name} ignored SIGTERM for {timeout:.0f}s; killing it")
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        # a JVM whose main thread has exited shows as a zombie while its other threads still
        # hold the listening sockets: stopped means the ports are free
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_port_open(self.cfg.host, p) for p in self.ports()):
            time.sleep(0.2)
        self.pidfile.unlink(missing_ok=True)
        _say(f"{self.name} stopped")

    def status(self) -> bool:
        pid = self.pid()
        up = bool(pid) and self.answers()
        state = "up" if up else ("starting or hung" if pid else "down")
        print(f"{self.name:9} {state:18} {self.cfg.host}:{self.port:<6} pid={pid or '-'}  log={self.logfile}")
        return up


def _kafka_cluster_id() -> str:
    """Return a Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def _locked(cfg: Config):  # type: ignore[no-untyped-def]
    """Serialise commands on one stack directory (two starts at once would race)."""
    cfg.stack_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.stack_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = Config.from_args(args)
    names = getattr(args, "servers", None) or ["kafka", "ferretdb"]
    unknown = sorted(set(names) - {"kafka", "ferretdb"})
    if unknown:
        print(f"[stack] error: unknown server {unknown[0]!r}; choose kafka or ferretdb", file=sys.stderr)
        return 2
    servers = [Server(n, cfg) for n in names]
    try:
        with _locked(cfg):
            return _command(args, cfg, servers)
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace, cfg: Config, servers: list[Server]) -> int:
    if args.command == "install":
        install_kafka(cfg)
        install_ferretdb(cfg)
        _say(f"installed: Kafka {cfg.kafka_version} in {cfg.kafka_home}, FerretDB at {cfg.ferretdb_bin}")
    elif args.command == "start":
        for s in servers:
            s.start()
    elif args.command == "stop":
        for s in reversed(servers):
            s.stop()
    elif args.command == "restart":
        for s in reversed(servers):
            s.stop()
        for s in servers:
            s.start()
    elif args.command == "status":
        ok = [s.status() for s in servers]
        return 0 if all(ok) else 1
    elif args.command == "logs":
        print(_tail(Server(args.server, cfg).logfile, args.lines))
    elif args.command == "env":
        print(f"export PARLEY_KAFKA_BOOTSTRAP={cfg.kafka_bootstrap}")
        print(f"export PARLEY_MONGO_URL={cfg.mongo_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
