"""The stack's ``redis-server``, with append-only persistence in the state folder."""

from __future__ import annotations

import redis

from loupe.runtime.connections import RedisConnection, redis_kwargs
from loupe.runtime.redis_acls import redis_acl_config
from loupe.stack.errors import StackError
from loupe.stack.models import ComponentStatus, State
from loupe.stack.processes import ManagedProcess, port_open, wait_until
from loupe.stack.security import StackSecurity
from loupe.stack.settings import StackSettings
from loupe.stack.system import redis_server_executable
from loupe.stack.tls import write_file


class RedisServer:
    """Start, ping and stop the stack's Redis; state lives in ``<state>/redis``."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir / "redis"
        self.data_dir = self.home / "data"
        self.log_file = self.home / "redis.log"
        self.tls_config_file = self.home / "redis-tls.conf"
        self.security: StackSecurity | None = None
        """Set by ``LocalStack`` for a secured stack before ``up``."""
        self.process = ManagedProcess("Redis", self.home / "redis.pid", ("redis-server",))

    def install(self) -> str:
        """Make sure ``redis-server`` is installed; return its path."""
        return redis_server_executable()

    def command(self, executable: str) -> list[str]:
        """The ``redis-server`` command line: loopback-bound, AOF on, in the foreground.

        The append-only file is the durability; RDB snapshots are off and the AOF is rewritten
        only past 256 MB, so a development box does not fork a copy of Redis every minute
        under load (on two cores the fork competes with the services for CPU).

        Secured, Redis listens with TLS only and wants the password; those settings come from
        a 0600 config file so that the password is not on the command line.
        """
        if self.security is None:
            config, port = [], ["--port", str(self.settings.redis_port)]
        else:
            config, port = [str(self.tls_config_file)], []
        return [
            executable,
            *config,
            "--bind",
            self.settings.host,
            *port,
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--auto-aof-rewrite-min-size",
            "256mb",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]

    def up(self) -> ComponentStatus:
        """Start Redis unless ours is already running; return once it answers PING."""
        started = self.process.pid() is None
        if started:
            if port_open(self.settings.host, self.settings.redis_port):
                raise StackError(
                    f"{self.settings.host}:{self.settings.redis_port} is in use by a process this "
                    "stack did not start (a system redis-server service?); stop it or choose "
                    "another port with LOUPE_STACK_REDIS_PORT"
                )
            executable = self.install()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if self.security is not None:
                write_file(self.tls_config_file, self._tls_config(self.security), private=True)
            self.process.start(self.command(executable), self.log_file)
        timeout = self.settings.redis_start_timeout_s
        ready = wait_until(lambda: self.process.pid() is None or self._ping(), timeout)
        if self.process.pid() is None:
            raise StackError(f"redis-server exited during startup; see {self.log_file}")
        if not ready:
            if started:
                self.process.stop(self.settings.stop_timeout_s)
            raise StackError(
                f"Redis did not answer PING within {timeout:.0f}s; see {self.log_file}"
            )
        return self.status()

    def down(self) -> int | None:
        """Stop our Redis if it runs (it flushes the AOF on SIGTERM); return its pid."""
        return self.process.stop(self.settings.stop_timeout_s)

    def status(self) -> ComponentStatus:
        """Whether our Redis runs and answers, with its pid, address and version."""
        pid = self.process.pid()
        version = self._version() if pid is not None else None
        if pid is None:
            state = State.STOPPED
        elif version is None:
            state = State.UNRESPONSIVE
        else:
            state = State.RUNNING
        return ComponentStatus(
            name="redis",
            state=state,
            pid=pid,
            address=self.settings.redis_url,
            version=f"Redis {version}" if version else "",
            log_file=self.log_file,
        )

    def connection(self) -> RedisConnection:
        """How clients connect: with TLS and the password when secured."""
        if self.security is None:
            return RedisConnection(url=self.settings.redis_url)
        return self.security.redis(self.settings.redis_url)

    def _tls_config(self, security: StackSecurity) -> bytes:
        """redis.conf lines: TLS on the stack's port, no plain port, the password required.

        Client certificates are optional (``tls-auth-clients optional``): the password is the
        authentication, a client certificate is verified when one is presented. The password is
        the ``default`` user's (the developer's); the gateway and the metrics service have ACL
        users of their own with only their grants (``loupe.runtime.redis_acls``).
        """
        tls = security.tls
        lines = [
            "port 0",
            f"tls-port {self.settings.redis_port}",
            f"tls-cert-file {tls.server_cert}",
            f"tls-key-file {tls.server_key}",
            f"tls-ca-cert-file {tls.ca}",
            "tls-auth-clients optional",
            f"requirepass {security.secrets.redis_password.get_secret_value()}",
            *redis_acl_config(security.secrets.service_passwords),
        ]
        return ("\n".join(lines) + "\n").encode()

    def _client(self) -> redis.Redis:
        """A short-timeout client for probing."""
        return redis.Redis.from_url(
            **redis_kwargs(self.connection()), socket_timeout=2, socket_connect_timeout=2
        )

    def _ping(self) -> bool:
        """Whether Redis answers PING."""
        try:
            with self._client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _version(self) -> str | None:
        """``redis_version`` from INFO, or None when Redis does not answer."""
        try:
            with self._client() as client:
                return str(client.info("server")["redis_version"])
        except redis.RedisError:
            return None
