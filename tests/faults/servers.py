"""Private PostgreSQL and RabbitMQ servers for the fault harness, which restarts them mid-sync.

The machine's own servers are shared by other runs and must never be restarted, so each of
these lives under a temporary directory, on free ports, and dies with the harness. PostgreSQL
refuses to run as root, so initdb and pg_ctl run as the `postgres` system user when we are
root. RabbitMQ gets its own node name, ports, data and log directories, an empty plugin list
(no management listener to clash with) and an Erlang cookie of its own (HOME).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions
import psycopg

from tests.support.waiting import wait_until

# The private servers listen below the kernel's ephemeral ports (32768-60999 here): a server
# restarted on a port in that range can find it taken by a client's own end of a connection
# made while the server was down, and then cannot listen (a RabbitMQ node exits with
# could_not_start_listener; seen in a rolling restart).
SERVER_PORTS = range(5000, 32000)


def free_port(ports: range = SERVER_PORTS) -> int:
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(ports)
        if is_free(port):
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PrivatePostgres:
    def __init__(self, base: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
        if not bins:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1])
        self.dir = base / "postgres"
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://root@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stderr or done.stdout}")

    def _options(self) -> str:
        # fsync off: the restarts here kill processes, never the machine, so what reached the
        # OS survives them; commits stay synchronous, or a crash could drop acknowledged work
        return (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c max_connections=300"
        )

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "root", "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        self.start()

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            self._options(),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_for: float = 0.0) -> None:
        """A crash-like restart: connections are cut (immediate mode), then it comes back."""
        self.stop("immediate")
        time.sleep(down_for)  # the outage is the fault: its length is the point
        self.start()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")

    def ready(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True


class PrivateRabbitmq:
    CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self, base: Path) -> None:
        self.dir = base / "rabbitmq"
        self.port = free_port()
        self.node = f"orgsync-faults-{self.port}@localhost"
        self.base_url = f"amqp://guest:guest@127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            HOME=str(self.dir),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.dir / "pid"),
        )

    def url(self, vhost: str) -> str:
        return f"{self.base_url}/{quote(vhost, safe='')}"

    def init(self) -> None:
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir(parents=True)
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text("")
        self.start()

    def start(self, attempts: int = 3) -> None:
        """A node started right after its predecessor stopped can exit at once (its name not
        yet free); it is started again. A second start while the first still boots exits
        harmlessly on the name clash."""
        for attempt in range(1, attempts + 1):
            subprocess.run(
                [self.SERVER, "-detached"],
                env=self.env,
                check=True,
                timeout=60,
                capture_output=True,
            )
            try:
                wait_until(self.ready, 60, f"RabbitMQ node {self.node}")
                return
            except AssertionError:  # not ready in time
                if attempt == attempts:
                    raise

    def stop(self) -> None:
        subprocess.run(
            [self.CTL, "-n", self.node, "stop"],
            env=self.env,
            check=True,
            timeout=120,
            capture_output=True,
        )

    def restart(self, down_for: float = 0.0) -> None:
        """SIGTERM to the Erlang VM: the node shuts down as `rabbitmqctl stop` would, without
        waiting for the CLI's own Erlang to boot (tens of seconds on a busy two-core box)."""
        pid = self.pid()
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 60, "RabbitMQ to stop")
        time.sleep(down_for)  # the outage is the fault: its length is the point
        self.start()

    def pid(self) -> int:
        """The node's Erlang VM: from its pid file, or, when the file is not there (seen under a
        load of 35 on two cores), the beam process started with this node's name."""
        pid_file = self.dir / "pid"
        if pid_file.exists():
            return int(pid_file.read_text().strip())
        name = f"RABBITMQ_NODENAME={self.node}".encode()
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                if b"beam" in (proc / "cmdline").read_bytes().split(b"\0")[0] and name in (
                    proc / "environ"
                ).read_bytes().split(b"\0"):
                    return int(proc.name)
        raise RuntimeError(f"no process of RabbitMQ node {self.node}")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop()

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [self.CTL, "-n", self.node, "-q", *args],
            env=self.env,
            check=True,
            timeout=60,
            capture_output=True,
        )

    def add_vhost(self, vhost: str) -> str:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.url(vhost)

    def ready(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.url("/"))).close()
        except pika.exceptions.AMQPError:
            return False
        return True
