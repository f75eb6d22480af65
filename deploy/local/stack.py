#!/usr/bin/env python3
"""Bring up Parley's real servers on a machine without Docker.

Apache Kafka (KRaft, one combined broker/controller node) runs from jars that Maven
resolves from Maven Central onto the machine's JDK; FerretDB (a MongoDB wire-protocol
server) is built from the Go module proxy with the machine's Go toolchain and stores its
data in a PostgreSQL server that this script runs too (the machine's PostgreSQL server
binaries, a cluster of its own under the stack directory, on its own port). FerretDB's
SQLite backend remains an option (``--ferretdb-backend sqlite``). Downloads and builds are
cached, so a second start takes seconds; data is kept across restarts.

Standard library only: this script runs before any virtualenv exists.

    python3 deploy/local/stack.py install          # fetch jars, build FerretDB, PostgreSQL (cached)
    python3 deploy/local/stack.py start [kafka|postgresql|ferretdb]
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
import pwd
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

SERVERS = ("kafka", "postgresql", "ferretdb")  # start order; stop goes the other way
PG_SUPERUSER = "postgres"  # the cluster's superuser (a role, not the operating-system user)
PG_DATABASE = "ferretdb"  # FerretDB's database and the role that owns it

# PostgreSQL settings for a development/test stack, passed as -c flags on every start (see
# docs/stack.md for why each one). Durability traded for speed: synchronous_commit=off may
# lose the last fraction of a second of commits if the server crashes, never corrupts.
PG_SETTINGS = {
    "synchronous_commit": "off",
    "default_toast_compression": "lz4",
    "gin_pending_list_limit": "64kB",
    "shared_buffers": "256MB",
    "jit": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "2GB",
    "log_checkpoints": "off",
    # a refused duplicate key is normal here (idempotent writes); log one line, not the
    # statement and key values that may carry a customer's data
    "log_error_verbosity": "terse",
    "log_min_error_statement": "panic",
    "timezone": "UTC",
    # room for FerretDB's connection pool (below) plus psql and the checks
    "max_connections": "600",
}

# FerretDB is a Go program that allocates for every document it converts: with Go's default
# (GOGC=100, a collection each time the heap doubles) it used 39 CPU-s for a 2,000-complaint
# burst, with GOGC=400 33 (docs/stack.md). GOMEMLIMIT bounds the heap all the same. The
# caller's own GOGC / GOMEMLIMIT win.
FERRETDB_GO_ENV = {"GOGC": "400", "GOMEMLIMIT": "1GiB"}

# FerretDB v1.24.2's PostgreSQL backend deadlocks when its pgx pool (default: max(4, CPUs)
# connections) is exhausted while a collection or index is being created: the creator holds
# the metadata lock and waits for a connection; the holders of every connection wait for
# the lock. Seen here with ~20 concurrent clients on a 2-core machine (a goroutine dump
# showed pgxpool.Acquire under Registry.indexesCreate and 33 readers in RWMutex.RLock).
# FerretDB also holds one pooled connection per matching update until a whole ``update``
# command ends (shared.outbox sends at most 25 per command) and one per open cursor.
# A pool well above the clients' total concurrency (services bound theirs: shared.mongo)
# keeps the creator from starving.
FERRETDB_PG_POOL_MAX_CONNS = 500

# FerretDB v1.24.2 on PostgreSQL answers an equality filter (``{field: value}``, ``_id``
# included) with ``_jsonb->'field' @> $2``, which its own btree indexes (``create_index``)
# cannot serve: every lookup by _id, and every sweep for ``outbox_pending: true``, scanned the
# whole table (about 60 ms at 50,000 small documents, 190 ms at 50,000 of 4 KB; an outbox sweep
# over 5,000 documents 44 ms -> 0.2 ms with the index). An event trigger gives every btree index
# FerretDB creates on a top-level field a GIN companion on the same expression (jsonb_path_ops
# serves ``@>``), and custom plans let PostgreSQL use it for the parameterised query. Run at
# every start, the same function also gives indexes made before (an older stack) their
# companions. FerretDB does not know of these indexes; dropping a collection drops them.
# ``enable_seqscan = off``: FerretDB's documents live in one jsonb column, TOASTed once they
# pass ~2 KB, so a table of 600 case documents is 40 kB of heap and PostgreSQL's cost model
# (which ignores detoasting) prefers a sequential scan that detoasts every row: 55 ms for one
# lookup by _id in investigation's table during a bench run, growing with the table, against
# 0.2 ms through the index. Every filter on a hot path has an index here, so the planner is
# told to use one wherever it can; queries without a usable index still scan.
#
# The version fence. FerretDB v1 updates a document by reading it, applying the update in Go
# and writing the whole document back (``UPDATE ... SET _jsonb = $1 WHERE _jsonb->'_id' = $2``),
# with nothing in between: two concurrent updates of one document can both read it, and the
# second write silently undoes the first. The services' versioned writers serialise among
# themselves with a unique claim (``shared.mongo.claim_next_version``), but an outbox clear
# (``shared.outbox``, by ``_id``) that read version v could still land after a claimed update
# to v + 1 and put the document back to v: a negotiation workspace lost its investigation's
# result this way in ``test_horizontal_scale`` (about one run in three). MongoDB updates a
# document atomically, so the application is right; here a trigger on every FerretDB table
# refuses (skips, as FerretDB ignores the row count) a write that would lower a numeric
# top-level ``version``. The stale clear is dropped instead: its events were published, and
# at worst they stay in the outbox to be published again (same event ids; consumers dedupe).
# The same event trigger attaches it to each table FerretDB creates; every start attaches it
# to tables made before.
INDEX_COMPANIONS_SQL = r"""
CREATE OR REPLACE FUNCTION parley_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION parley_version_fence(tbl oid) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = '_jsonb' AND NOT attisdropped)
     OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'parley_version_fence') THEN
    RETURN 0;
  END IF;
  EXECUTE format('CREATE TRIGGER parley_version_fence BEFORE UPDATE ON %s FOR EACH ROW '
                 'WHEN (jsonb_typeof(NEW._jsonb -> ''version'') = ''number'' '
                 'AND jsonb_typeof(OLD._jsonb -> ''version'') = ''number'' '
                 'AND (NEW._jsonb -> ''version'') < (OLD._jsonb -> ''version'')) '
                 'EXECUTE FUNCTION parley_refuse_update()', tbl::regclass);
  RETURN 1;
END $$;
CREATE OR REPLACE FUNCTION parley_gin_companions(idx oid) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE tbl oid; nkeys int; k int; expr text; field text; made int := 0; uniq boolean;
BEGIN
  SELECT i.indrelid, i.indnkeyatts, i.indisunique INTO tbl, nkeys, uniq
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
   WHERE i.indexrelid = idx AND a.amname = 'btree';
  IF tbl IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = '_jsonb') THEN
    RETURN 0;
  END IF;
  FOR k IN 1..LEAST(nkeys, 1) LOOP  -- the leading key, as MongoDB serves a prefix
    expr := pg_get_indexdef(idx, k, false);
    field := substring(expr FROM '^\(\(_jsonb -> ''([A-Za-z0-9_]+)''::text\)\)$');
    IF field IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM pg_index g JOIN pg_class gc ON gc.oid = g.indexrelid JOIN pg_am ga ON ga.oid = gc.relam
          WHERE g.indrelid = tbl AND ga.amname = 'gin' AND pg_get_indexdef(g.indexrelid, 1, false) = expr) THEN
      EXECUTE format('CREATE INDEX ON %s USING gin ((_jsonb -> %L) jsonb_path_ops)', tbl::regclass, field);
      made := made + 1;
    END IF;
    -- a non-unique btree on a field other than _id serves no query FerretDB sends (its
    -- filters are @>, and it sorts in Go) and costs every insert and update an index entry
    IF field IS NOT NULL AND field <> '_id' AND NOT uniq THEN
      EXECUTE format('DROP INDEX %s', idx::regclass);
    END IF;
  END LOOP;
  RETURN made;
END $$;
CREATE OR REPLACE FUNCTION parley_on_create() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands()
           WHERE command_tag IN ('CREATE INDEX', 'CREATE TABLE') AND object_type IN ('index', 'table')
             AND schema_name NOT IN ('pg_catalog', 'public', 'information_schema') LOOP
    IF r.object_type = 'index' THEN
      PERFORM parley_gin_companions(r.objid);
    ELSE
      PERFORM parley_version_fence(r.objid);
    END IF;
  END LOOP;
END $$;
DROP EVENT TRIGGER IF EXISTS parley_id_index;
DROP FUNCTION IF EXISTS parley_id_index();
DROP EVENT TRIGGER IF EXISTS parley_gin_index;
DROP FUNCTION IF EXISTS parley_gin_on_create_index();
DROP EVENT TRIGGER IF EXISTS parley_on_create;
CREATE EVENT TRIGGER parley_on_create ON ddl_command_end WHEN TAG IN ('CREATE INDEX', 'CREATE TABLE')
  EXECUTE FUNCTION parley_on_create();
SELECT count(parley_gin_companions(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'public', 'information_schema', 'pg_toast');
SELECT count(parley_version_fence(c.oid))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'public', 'information_schema', 'pg_toast');
ALTER DATABASE ferretdb SET plan_cache_mode = force_custom_plan;
ALTER DATABASE ferretdb SET enable_seqscan = off;
"""


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
    ferretdb_backend: str  # PARLEY_FERRETDB_BACKEND: postgresql (default) | sqlite
    postgresql_url: str  # PARLEY_FERRETDB_POSTGRESQL_URL: an external server; empty = run our own
    postgresql_port: int  # PARLEY_POSTGRESQL_PORT: our own PostgreSQL server's port
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
            postgresql_port=args.postgresql_port,
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

    @property
    def runs_postgresql(self) -> bool:
        """Whether this stack runs a PostgreSQL server of its own (for FerretDB)."""
        return self.ferretdb_backend == "postgresql" and not self.postgresql_url

    @property
    def ferretdb_postgresql_url(self) -> str:
        if self.postgresql_url:
            return self.postgresql_url
        return (f"postgres://{PG_DATABASE}@{self.host}:{self.postgresql_port}/{PG_DATABASE}"
                f"?pool_max_conns={FERRETDB_PG_POOL_MAX_CONNS}")


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
        choices=("postgresql", "sqlite"),
        default=_env("PARLEY_FERRETDB_BACKEND", "postgresql"),
    )
    p.add_argument(
        "--postgresql-url",
        default=_env("PARLEY_FERRETDB_POSTGRESQL_URL", ""),
        help="FerretDB's PostgreSQL when it is an external server; empty (the default): the "
        "stack runs its own PostgreSQL on --postgresql-port",
    )
    p.add_argument(
        "--postgresql-port", type=int, default=int(_env("PARLEY_POSTGRESQL_PORT", "25432"))
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "install", help="fetch the Kafka jars, build FerretDB, install PostgreSQL if missing"
    )
    for name, text in (
        ("start", "start the servers and wait until they answer"),
        ("stop", "stop the servers"),
        ("restart", "stop, then start"),
        ("status", "say what runs; exit 1 if anything asked for is down"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("servers", nargs="*", metavar="kafka|postgresql|ferretdb", default=[])
    lp = sub.add_parser("logs", help="print the end of a server's log")
    lp.add_argument("server", choices=SERVERS)
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


PG_TOOLS = ("postgres", "initdb", "psql")


def _pg_version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.parent.name)) or (0,)


def find_postgresql() -> Path | None:
    """The directory holding the PostgreSQL server binaries, or None.

    ``PARLEY_POSTGRESQL_BINDIR`` first, then Debian's ``/usr/lib/postgresql/<version>/bin``
    (newest first; Debian does not put the server on PATH), then ``pg_config --bindir`` and
    ``postgres`` on PATH.
    """
    candidates: list[Path] = []
    if os.environ.get("PARLEY_POSTGRESQL_BINDIR"):
        candidates.append(Path(os.environ["PARLEY_POSTGRESQL_BINDIR"]))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_pg_version_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if out:
            candidates.append(Path(out))
    postgres = shutil.which("postgres")
    if postgres:
        candidates.append(Path(postgres).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in PG_TOOLS):
            return bindir
    return None


def install_postgresql(cfg: Config) -> Path:
    """Make sure PostgreSQL's server binaries exist (apt-get when missing); return their dir."""
    bindir = find_postgresql()
    if bindir:
        return bindir
    why = (
        "FerretDB's PostgreSQL backend needs the PostgreSQL server (initdb, postgres, psql), "
        "which is not installed: not in /usr/lib/postgresql/*/bin, PARLEY_POSTGRESQL_BINDIR, "
        "or on PATH"
    )
    alt = "or use FerretDB's SQLite backend: --ferretdb-backend sqlite"
    apt = shutil.which("apt-get")
    if not apt:
        raise StackError(
            f"{why}, and apt-get is not available here to install it. Install the PostgreSQL "
            f"server with the system's package manager (PostgreSQL 15 is what was tested), "
            f"set PARLEY_POSTGRESQL_BINDIR to its bin directory, {alt}."
        )
    if os.geteuid() != 0:
        raise StackError(
            f"{why}, and installing it with apt-get needs root. Run "
            f"'sudo apt-get install -y postgresql' and start again, {alt}."
        )
    _say("installing the PostgreSQL server with apt-get (first time only)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [apt, "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # the package lists may be missing or stale: refresh them once
        subprocess.run([apt, "update", "-q"], capture_output=True, text=True, env=env)
        proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise StackError(
            f"{why}, and 'apt-get install -y postgresql' failed ({proc.returncode}):\n{tail}\n"
            f"Install the PostgreSQL server by hand, set PARLEY_POSTGRESQL_BINDIR, {alt}."
        )
    bindir = find_postgresql()
    if not bindir:
        raise StackError(
            "apt-get installed 'postgresql' but initdb/postgres/psql are still not found in "
            "/usr/lib/postgresql/*/bin; set PARLEY_POSTGRESQL_BINDIR to their directory."
        )
    return bindir


def _pg_os_user() -> pwd.struct_passwd | None:
    """The operating-system user PostgreSQL runs as: None means "this one".

    PostgreSQL refuses to run as root; then it runs as ``PARLEY_POSTGRESQL_OS_USER``
    (default ``postgres``, the user Debian's package creates).
    """
    if os.geteuid() != 0:
        return None
    name = _env("PARLEY_POSTGRESQL_OS_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise StackError(
            f"PostgreSQL refuses to run as root, and there is no '{name}' user to run it as. "
            f"Create one (useradd --system --user-group --home-dir /var/lib/postgresql {name}) "
            f"or name another with PARLEY_POSTGRESQL_OS_USER."
        ) from None


def _pg_user_can(user: pwd.struct_passwd, test: str, path: Path) -> bool:
    """Whether PostgreSQL's user passes ``test <test> <path>`` (-x: reach, -w: write)."""
    return subprocess.run(["test", test, str(path)], **_as_pg_user(user)).returncode == 0  # type: ignore[call-overload]


def _as_pg_user(user: pwd.struct_passwd | None) -> dict[str, object]:
    """Keyword arguments for subprocess that run a command as PostgreSQL's user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if user is None:
        return {"env": env}
    env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return {"env": env, "user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


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


def postgresql_answers(host: str, port: int, user: str = PG_SUPERUSER, database: str = "postgres") -> bool:
    """Log in with a PostgreSQL StartupMessage and check the server is ready for queries.

    The stack's cluster trusts loopback connections, so a server that asks for a password
    is not it; one that is still starting up answers with an error.
    """
    params = b"".join(k + b"\x00" + v.encode() + b"\x00" for k, v in ((b"user", user), (b"database", database)))
    body = struct.pack(">i", 196608) + params + b"\x00"  # protocol 3.0
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(body) + 4) + body)
            while True:
                kind = _recv_exact(s, 1)
                size = struct.unpack(">i", _recv_exact(s, 4))[0]
                payload = _recv_exact(s, size - 4)
                if kind == b"E" or (kind == b"R" and payload[:4] != b"\x00\x00\x00\x00"):
                    return False
                if kind == b"Z":  # ReadyForQuery
                    s.sendall(b"X" + struct.pack(">i", 4))  # Terminate
                    return True
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
        return {
            "kafka": self.cfg.kafka_port,
            "postgresql": self.cfg.postgresql_port,
            "ferretdb": self.cfg.ferretdb_port,
        }[self.name]

    def ports(self) -> list[int]:
        """Every port this server listens on."""
        if self.name == "kafka":
            return [self.cfg.kafka_port, self.cfg.controller_port]
        if self.name == "postgresql":
            return [self.cfg.postgresql_port]
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
            marker = {"kafka": b"kafka.Kafka", "postgresql": b"postgres"}.get(self.name, b"ferretdb")
            # right after exec the kernel may show an empty command line for a moment
            if cmdline and marker not in cmdline:
                return None
        except OSError:
            pass
        return pid

    def answers(self) -> bool:
        if self.name == "kafka":
            return kafka_answers(self.cfg.host, self.cfg.kafka_port)
        if self.name == "postgresql":
            return postgresql_answers(self.cfg.host, self.cfg.postgresql_port)
        return mongo_answers(self.cfg.host, self.cfg.ferretdb_port)

    # -- start

    def command(self) -> list[str]:
        if self.name == "kafka":
            return self._kafka_command()
        if self.name == "postgresql":
            return self._postgresql_command()
        return self._ferretdb_command()

    def popen_options(self) -> dict[str, object]:
        """Extra subprocess options: PostgreSQL runs as its own user when we are root; FerretDB
        gets the Go garbage collector's settings (``FERRETDB_GO_ENV``) unless the caller set them."""
        if self.name == "postgresql":
            return _as_pg_user(_pg_os_user())
        if self.name == "ferretdb":
            return {"env": {**FERRETDB_GO_ENV, **os.environ}}
        return {}

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
                    # the controller appends a no-op record to the metadata log every 500 ms by
                    # default, for other nodes to see the log advance (KIP-835); one node has none
                    # to tell, and each append costs (idle broker: 2.2-2.6 -> 1.5 CPU-s a minute)
                    "metadata.max.idle.interval.ms=5000",
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
                    "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props),
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

    # -- PostgreSQL: <stack>/postgresql/{data,run} owned by its user, pid and log owned by us

    def _pg_home(self, user: pwd.struct_passwd | None) -> Path:
        """The directory for the cluster (``data/``) and its unix socket (``run/``).

        Normally this server's directory in the stack. When PostgreSQL runs as another user
        (we are root) that cannot reach it — a stack under /root, say — the cluster goes to
        a directory of its own under /tmp, and ``<stack>/postgresql/data`` links to it.
        """
        if user is None or _pg_user_can(user, "-x", self.dir):
            return self.dir
        import hashlib

        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]
        home = Path(os.environ.get("TMPDIR") or "/tmp") / f"parley-postgresql-{digest}"
        link = self.dir / "data"
        if not link.is_symlink():  # a new stack directory: a new cluster
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            link.symlink_to(home / "data")
            _say(f"'{user.pw_name}' cannot reach {self.dir}; PostgreSQL's data is in {home}")
        os.chown(home, user.pw_uid, user.pw_gid)
        home.chmod(0o700)
        return home

    def pg_socket_dir(self, home: Path) -> Path | None:
        """Where the server's unix socket goes; None when the path would be too long for one."""
        run = home / "run"
        return run if len(str(run / f".s.PGSQL.{self.cfg.postgresql_port}.lock")) < 100 else None

    def _postgresql_command(self) -> list[str]:
        cfg = self.cfg
        bindir = install_postgresql(cfg)
        user = _pg_os_user()
        home = self._pg_home(user)
        data = home / "data"
        for path in (data, home / "run"):
            path.mkdir(parents=True, exist_ok=True)
            if user is not None:
                os.chown(path, user.pw_uid, user.pw_gid)
        data.chmod(0o700)
        if user is not None and not _pg_user_can(user, "-w", data):
            raise StackError(
                f"PostgreSQL runs as '{user.pw_name}' (it refuses to run as root), and that "
                f"user cannot write to {data}. Choose another stack directory (PARLEY_STACK_DIR)."
            )
        if not (data / "PG_VERSION").exists():
            for child in data.iterdir():  # the remains of an initdb that did not finish
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            _say(f"creating a PostgreSQL cluster in {data} (first start only)")
            proc = subprocess.run(  # type: ignore[call-overload]
                [
                    str(bindir / "initdb"), "-D", str(data), f"--username={PG_SUPERUSER}",
                    "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions",
                ],
                capture_output=True, text=True, cwd=home, **_as_pg_user(user),
            )
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise StackError(f"initdb failed ({proc.returncode}) for {data}:\n{tail}")
        socket_dir = self.pg_socket_dir(home)
        settings = {
            "listen_addresses": cfg.host,
            "port": str(cfg.postgresql_port),
            "unix_socket_directories": str(socket_dir) if socket_dir else "",
            **PG_SETTINGS,
        }
        with contextlib.suppress(OSError, ValueError):
            if int((data / "PG_VERSION").read_text().strip().split(".")[0]) < 14:
                settings.pop("default_toast_compression")  # lz4 for TOAST came with PostgreSQL 14
        if os.environ.get("PARLEY_POSTGRESQL_STATEMENTS"):  # a diagnostic: per-statement costs
            settings["shared_preload_libraries"] = "pg_stat_statements"
        cmd = [str(bindir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _ensure_ferretdb_database(self) -> None:
        """Create FerretDB's role and database in our cluster when they do not exist yet."""
        bindir = install_postgresql(self.cfg)
        sql = (
            f"SELECT 'CREATE ROLE {PG_DATABASE} LOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{PG_DATABASE}')\\gexec\n"
            f"SELECT 'CREATE DATABASE {PG_DATABASE} OWNER {PG_DATABASE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{PG_DATABASE}')\\gexec\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = subprocess.run(
            [
                str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.cfg.host,
                "-p", str(self.cfg.postgresql_port), "-U", PG_SUPERUSER, "-d", "postgres",
            ],
            input=sql, capture_output=True, text=True, env=dict(env, PGCONNECT_TIMEOUT="10"),
        )
        if proc.returncode != 0:
            raise StackError(
                f"could not create the '{PG_DATABASE}' database in PostgreSQL on "
                f"{self.cfg.host}:{self.cfg.postgresql_port}:\n{(proc.stdout + proc.stderr).strip()}"
            )
        proc = subprocess.run(
            [
                str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.cfg.host,
                "-p", str(self.cfg.postgresql_port), "-U", PG_SUPERUSER, "-d", PG_DATABASE,
            ],
            input=INDEX_COMPANIONS_SQL, capture_output=True, text=True, env=dict(env, PGCONNECT_TIMEOUT="10"),
        )
        if proc.returncode != 0:
            raise StackError(
                f"could not install the index-companion trigger in PostgreSQL on "
                f"{self.cfg.host}:{self.cfg.postgresql_port}:\n{(proc.stdout + proc.stderr).strip()}"
            )
        deadline = time.monotonic() + 30
        while not postgresql_answers(self.cfg.host, self.cfg.postgresql_port, PG_DATABASE, PG_DATABASE):
            if time.monotonic() > deadline:
                raise StackError(f"PostgreSQL does not let '{PG_DATABASE}' log in to its database")
            time.sleep(0.2)

    # -- FerretDB

    def _ferretdb_command(self) -> list[str]:
        cfg = self.cfg
        binary = install_ferretdb(cfg)
        data = self.dir / "data"
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
            data.mkdir(parents=True, exist_ok=True)
            cmd += ["--handler=sqlite", f"--sqlite-url=file:{data}/"]
        else:
            if cfg.runs_postgresql and not postgresql_answers(
                cfg.host, cfg.postgresql_port, PG_DATABASE, PG_DATABASE
            ):
                raise StackError(
                    f"FerretDB stores its data in PostgreSQL, which does not answer on "
                    f"{cfg.host}:{cfg.postgresql_port}; start it first (stack.py start postgresql)"
                )
            cmd += ["--handler=postgresql", f"--postgresql-url={cfg.ferretdb_postgresql_url}"]
        return cmd

    def start(self, timeout: float = 90.0) -> None:
        self._start(timeout)
        if self.name == "postgresql":
            self._ensure_ferretdb_database()

    def _start(self, timeout: float) -> None:
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
            proc = subprocess.Popen(  # type: ignore[call-overload]
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
                **self.popen_options(),
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
        # PostgreSQL: SIGINT is its "fast" shutdown (roll back open transactions, checkpoint,
        # exit); SIGTERM would wait for every client to disconnect first.
        sig = signal.SIGINT if self.name == "postgresql" else signal.SIGTERM
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None and self.name == "postgresql":
            _say(f"{self.name} ignored SIGINT for {timeout:.0f}s; immediate shutdown (SIGQUIT)")
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.pid() is not None:
                time.sleep(0.2)
        if self.pid() is not None:
            _say(f"{self.name} ignored {sig.name} for {timeout:.0f}s; killing it")
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
        print(f"{self.name:10} {state:18} {self.cfg.host}:{self.port:<6} pid={pid or '-'}  log={self.logfile}")
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


def _servers(cfg: Config, command: str, asked: list[str]) -> list[Server]:
    """The servers a command acts on, in start order.

    Without names: Kafka, FerretDB and, when FerretDB stores its data in the stack's own
    PostgreSQL, PostgreSQL; ``stop`` also stops a PostgreSQL left running by an earlier
    start with other options. Starting FerretDB starts the PostgreSQL it needs.
    """
    names = set(asked)
    if not asked:
        names = {"kafka", "ferretdb"}
        if cfg.runs_postgresql or (command == "stop" and Server("postgresql", cfg).pid()):
            names.add("postgresql")
    elif command in ("start", "restart") and "ferretdb" in names and cfg.runs_postgresql:
        names.add("postgresql")
    return [Server(n, cfg) for n in SERVERS if n in names]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = Config.from_args(args)
    asked = getattr(args, "servers", None) or []
    unknown = sorted(set(asked) - set(SERVERS))
    if unknown:
        print(
            f"[stack] error: unknown server {unknown[0]!r}; choose kafka, postgresql or ferretdb",
            file=sys.stderr,
        )
        return 2
    servers = _servers(cfg, args.command, asked)
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
        pg = ""
        if cfg.runs_postgresql:
            pg = f", PostgreSQL server in {install_postgresql(cfg)}"
        _say(
            f"installed: Kafka {cfg.kafka_version} in {cfg.kafka_home}, "
            f"FerretDB at {cfg.ferretdb_bin}{pg}"
        )
    elif args.command == "start":
        for s in servers:
            s.start()
    elif args.command == "stop":
        for s in reversed(servers):
            s.stop()
    elif args.command == "restart":
        # restart ferretdb also "starts" PostgreSQL (a no-op when it runs) but does not stop it
        asked = set(getattr(args, "servers", None) or SERVERS)
        for s in reversed(servers):
            if s.name in asked:
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
