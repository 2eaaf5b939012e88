"""Real Redis servers for the queue tests, never a silent skip.

`redis_url` is the server at TGINGEST_TEST_REDIS_URL when that is set (CI and developer
machines run one), otherwise a `redis-server` from PATH that this module starts once per session
on a free loopback port, without persistence, in a temporary directory. Tests that need to
kill and restart a server, or a whole Redis Cluster, start their own with `RedisServer` and
`RedisClusterNodes`. When redis-server is missing the tests fail and say so.

A module rather than fixtures in the root conftest.py, which the whole suite shares: test
modules that need Redis import what they use from here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

_READY_SECONDS = 10.0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(cluster_bus: bool = False) -> int:
    """A loopback port nobody listens on; with `cluster_bus`, port + 10000 is free too (a
    cluster node listens there for its peers)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not cluster_bus:
            return port
        if port <= 55_000 and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free loopback port (with a free cluster bus port) found")


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail(
            "redis-server is not on PATH and TGINGEST_TEST_REDIS_URL is not set: the Redis "
            "queue tests need one of them (apt install redis-server)"
        )
    return found


class RedisServer:
    """A redis-server process on 127.0.0.1:`port` with no persistence: a restart loses
    everything, like a cache-configured production Redis after a crash."""

    def __init__(self, port: int, workdir: Path, *extra: str) -> None:
        self.port = port
        self.workdir = workdir
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        until = time.monotonic() + _READY_SECONDS
        while time.monotonic() < until:
            if self.process.poll() is not None:
                tail = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"redis-server on port {self.port} exited at start:\n{tail}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64):  # +PONG, or -NOAUTH when a password is set: it is up
                        return
            time.sleep(0.02)
        pytest.fail(f"redis-server on port {self.port} did not answer in {_READY_SECONDS} s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is saved (there is no persistence anyway)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


class RedisClusterNodes:
    """Three cluster-enabled redis-servers joined into one cluster (no replicas)."""

    def __init__(self, workdir: Path) -> None:
        ports: list[int] = []
        while len(ports) < 3:
            port = free_port(cluster_bus=True)
            if port not in ports:
                ports.append(port)
        self.servers = [
            RedisServer(
                port,
                workdir / f"node{port}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(workdir / f"node{port}" / "nodes.conf"),
                "--cluster-node-timeout",
                "5000",
            )
            for port in ports
        ]

    @property
    def url(self) -> str:
        return f"redis://{self.servers[0].address}"

    def start(self) -> RedisClusterNodes:
        for server in self.servers:
            server.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.fail("redis-cli is not on PATH; the Redis Cluster test needs it")
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(s.address for s in self.servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        until = time.monotonic() + 20
        while not all(self._state_ok(s) for s in self.servers):
            if time.monotonic() > until:
                pytest.fail("the test Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    @staticmethod
    def _state_ok(server: RedisServer) -> bool:
        out = subprocess.run(
            ["redis-cli", "-p", str(server.port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return "cluster_state:ok" in out

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TGINGEST_TEST_REDIS_URL")
    if url:
        # The queue waits out outages by design, so a dead server would hang the tests: fail.
        probe = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            probe.ping()
        except redis.RedisError as e:
            pytest.fail(f"TGINGEST_TEST_REDIS_URL is set but Redis does not answer: {e}")
        finally:
            probe.close()
        yield url
        return
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis")).start()
    try:
        yield f"redis://{server.address}/0"
    finally:
        server.stop()


@pytest.fixture
async def redis_key_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    prefix = f"tgingest-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
