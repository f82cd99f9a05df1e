"""Three RabbitMQ nodes of the installed Debian package, joined into one cluster on loopback
ports: `make cluster` / `make cluster-stop` (python -m tests.faults.cluster start|stop), and the
cluster whose nodes the fault harness kills, stops, pauses and restarts
(tests/faults/cluster_faults.py).

Each node has its own name, AMQP and distribution ports, data and log folders, config file and
pid file, and no plugins (so no management listener); the three share one Erlang cookie (one
HOME). The machine's own node (5672/25672/15672) is never touched: its epmd is shared, as every
node on a machine shares it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import secrets
import signal
import string
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions

from tests.support.waiting import wait_until

CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
DEFAULT_DIR = Path("/tmp/orgsync-cluster")
DEFAULT_PORT = 5681
DIST_OFFSET = 20000  # a node's distribution port, from its AMQP port
# a client leaves a node that stopped answering after one or two heartbeats
URL_OPTIONS = "heartbeat=10"


class Node:
    def __init__(self, base: Path, name: str, port: int) -> None:
        self.name = f"{name}@localhost"
        self.port = port
        self.dir = base / name
        self.env = dict(
            os.environ,
            HOME=str(base),  # the shared Erlang cookie
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_PORT=str(port),
            RABBITMQ_DIST_PORT=str(port + DIST_OFFSET),
            RABBITMQ_MNESIA_BASE=str(self.dir / "data"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.dir / "pid"),
        )

    def url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}?{URL_OPTIONS}"

    def prepare(self) -> None:
        for sub in ("data", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "cluster_partition_handling = pause_minority\n"
        )

    def start(self, timeout: float = 90.0) -> None:
        """Start the node and wait until it answers AMQP. A node started right after its
        predecessor stopped can exit at once (its name not yet free): it is started again."""
        deadline = time.monotonic() + timeout
        while True:
            subprocess.run(
                [SERVER, "-detached"], env=self.env, check=True, timeout=60, capture_output=True
            )
            try:
                wait_until(
                    self.ready,
                    min(45.0, max(1.0, deadline - time.monotonic())),
                    self.name,
                    interval=0.5,
                )
                return
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise

    def ready(self) -> bool:
        try:
            params = pika.URLParameters(self.url())
            params.socket_timeout = params.stack_timeout = 2
            pika.BlockingConnection(params).close()
        except pika.exceptions.AMQPError:
            return False
        return True

    def ctl(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [CTL, "-n", self.name, "-q", *args],
            env=self.env,
            check=True,
            timeout=timeout,
            capture_output=True,
            text=True,
        )
        return done.stdout

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.dir / "pid").read_text().strip())
            if Path(f"/proc/{pid}").exists():
                return pid
        return None

    def signal(self, sig: signal.Signals) -> None:
        pid = self.pid()
        if pid is None:
            raise RuntimeError(f"RabbitMQ node {self.name} is not running")
        os.kill(pid, sig)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the Erlang VM (as `rabbitmqctl stop`, without booting the CLI's own VM),
        then SIGKILL if it has not exited in time."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a paused node cannot stop
            os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout, f"{self.name} to stop")
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def pause(self, seconds: float) -> None:
        """SIGSTOP, then SIGCONT: a node that stops answering without closing anything."""
        self.signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)  # the outage is the fault: its length is the point
        finally:
            self.signal(signal.SIGCONT)

    def kill(self) -> None:
        pid = self.pid()
        self.signal(signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, f"{self.name} killed")


class Cluster:
    """Three joined nodes under `base`, on AMQP ports `port` to `port + 2`."""

    def __init__(self, base: Path = DEFAULT_DIR, port: int = DEFAULT_PORT, prefix: str = "orgsync"):
        self.dir = base
        self.nodes = [Node(base, f"{prefix}-{n}", port + n - 1) for n in (1, 2, 3)]

    def url(self, vhost: str = "/") -> str:
        """ORGSYNC_BROKER_URL: every node's URL, comma-separated."""
        return ",".join(node.url(vhost) for node in self.nodes)

    def init(self) -> None:
        """Start the three nodes (in parallel) and join the second and third to the first."""
        self.dir.mkdir(parents=True, exist_ok=True)
        cookie = self.dir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
            cookie.chmod(0o400)
        for node in self.nodes:
            node.prepare()
        with concurrent.futures.ThreadPoolExecutor(3) as starting:
            list(starting.map(Node.start, self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            if first.name in node.ctl("cluster_status", "--formatter", "json"):
                continue  # joined on an earlier start
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        self.wait_joined()

    def wait_joined(self, timeout: float = 120.0) -> None:
        def joined() -> bool:
            status = self.nodes[0].ctl("cluster_status", "--formatter", "json")
            running = status.split('"running_nodes"', 1)[-1].split("]", 1)[0]
            return all(node.name in running for node in self.nodes)

        wait_until(joined, timeout, "three running nodes in the cluster", interval=1.0)

    def ready(self) -> bool:
        return all(node.ready() for node in self.nodes)

    def add_vhost(self, vhost: str) -> str:
        node = self.live()
        node.ctl("add_vhost", vhost)
        node.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.url(vhost)

    def live(self) -> Node:
        return next(node for node in self.nodes if node.pid() is not None and node.ready())

    def leaders(self, vhost: str) -> dict[str, int]:
        """How many of the vhost's quorum queues each node leads."""
        counts = {node.name: 0 for node in self.nodes}
        out = self.live().ctl("list_queues", "-p", vhost, "name", "leader", "-s")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] in counts:
                counts[parts[1]] += 1
        return counts

    def wait_members(self, vhost: str, timeout: float = 120.0) -> None:
        """Until every quorum queue of the vhost has its three members online again."""

        def complete() -> bool:
            out = self.live().ctl(
                "list_queues", "-p", vhost, "name", "online", "--no-table-headers"
            )
            rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
            return bool(rows) and all(row[1].count("@") == len(self.nodes) for row in rows)

        # every look boots rabbitmqctl's own Erlang VM: seconds of CPU the workers need too
        wait_until(complete, timeout, f"every queue of {vhost} on three nodes", interval=3.0)

    def close(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(3) as stopping:
            list(stopping.map(Node.stop, self.nodes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.cluster")
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("CLUSTER_DIR") or DEFAULT_DIR)
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("CLUSTER_PORT") or DEFAULT_PORT)
    )
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir, args.port)
    if args.action == "stop":
        cluster.close()
        print(f"stopped {', '.join(n.name for n in cluster.nodes)} (data kept in {args.dir})")
        return 0
    started = time.monotonic()
    cluster.init()
    print(
        f"three nodes joined in {time.monotonic() - started:.0f} s:"
        f" {', '.join(f'{n.name} on 127.0.0.1:{n.port}' for n in cluster.nodes)};"
        f" data and logs in {args.dir}; `make cluster-stop` stops them"
    )
    print(f"ORGSYNC_BROKER_URL={cluster.url()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
