"""A single-node Apache Kafka broker (KRaft combined mode) run from Maven Central jars."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import admin_client
from loupe.stack.errors import StackError
from loupe.stack.jars import ensure_jars, kafka_version_of
from loupe.stack.models import ComponentStatus, State
from loupe.stack.processes import ManagedProcess, port_open
from loupe.stack.resources import read_asset, render_asset
from loupe.stack.security import (
    ADMIN_USER,
    CLIENT_USER,
    CONTROLLER_MECHANISM,
    MECHANISM,
    StackSecurity,
)
from loupe.stack.settings import StackSettings
from loupe.stack.system import java_executable
from loupe.stack.tls import write_file

log = logging.getLogger(__name__)

PROBE_TOPIC = "_loupe_stack_probe"
"""Created, seen and deleted again to prove the broker accepts topic operations."""

JVM_FLAGS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Dlog4j2.shutdownHookEnabled=false",
)


def render_server_properties(
    settings: StackSettings, log_dirs: Path, security: StackSecurity | None = None
) -> str:
    """server.properties of a single combined broker+controller listening per ``settings``.

    With ``security`` the client listener is SASL_SSL (SCRAM-SHA-512, the stack's certificate),
    the broker talks to itself over it as the admin user, and the controller listener binds to
    127.0.0.1 only and takes the admin user alone (SASL_SSL PLAIN), so no client reaches the
    controller unauthenticated. KRaft's ``StandardAuthorizer`` refuses whatever no ACL allows;
    the super users are the admin and the developer's user.
    """
    text = render_asset(
        "server.properties",
        host=settings.host,
        kafka_port=settings.kafka_port,
        controller_port=settings.controller_port,
        log_dirs=log_dirs,
    )
    if security is None:
        return text
    controller = f"127.0.0.1:{settings.controller_port}"
    client = f"SASL_SSL://{settings.host}:{settings.kafka_port}"
    admin_password = security.secrets.admin_password.get_secret_value()
    return _override(
        text,
        {
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"{client},CONTROLLER://{controller}",
            "advertised.listeners": client,
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL",
            "sasl.mechanism.controller.protocol": CONTROLLER_MECHANISM.value,
            "listener.name.controller.sasl.enabled.mechanisms": CONTROLLER_MECHANISM.value,
            f"listener.name.controller.{CONTROLLER_MECHANISM.value.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{ADMIN_USER}" password="{admin_password}" '
                f'user_{ADMIN_USER}="{admin_password}";'
            ),
            "sasl.enabled.mechanisms": MECHANISM.value,
            "sasl.mechanism.inter.broker.protocol": MECHANISM.value,
            f"listener.name.sasl_ssl.{MECHANISM.value.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_USER}" password="{admin_password}";'
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(security.tls.server_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(security.tls.ca),
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.client.auth": "none",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN_USER};User:{CLIENT_USER}",
        },
    )


def _override(properties: str, values: dict[str, str]) -> str:
    """``properties`` with the lines of keys in ``values`` replaced, and new keys appended."""
    pending = dict(values)
    lines = []
    for line in properties.splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key}={pending.pop(key)}" if key in pending and "=" in line else line)
    if pending:
        lines += ["", "# Secured stack (loupe stack up --secure)"]
        lines += [f"{key}={value}" for key, value in pending.items()]
    return "\n".join(lines) + "\n"


SCRAM_ITERATIONS = 8192
"""PBKDF2 iterations of the SCRAM credentials the stack creates (Kafka's minimum is 4096)."""


def upsert_scram_users(
    kafka: KafkaConnection, users: dict[str, SecretStr], timeout_s: float = 30.0
) -> None:
    """Create the SCRAM-SHA-512 users (or set their passwords) through the Admin API, as
    ``kafka`` (a super user once the authorizer is on)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, password.get_secret_value().encode())
        for user, password in users.items()
    ]
    admin = admin_client(kafka)
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).values():
        future.result(timeout=timeout_s)


class KafkaBroker:
    """Install, start, probe and stop the stack's Kafka broker; state lives in ``<state>/kafka``."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir / "kafka"
        self.config_file = self.home / "server.properties"
        self.log4j_file = self.home / "log4j2.properties"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.out_file = self.home / "kafka.out"
        self.version_file = self.home / "kafka.version"
        self.storage_mode_file = self.home / "storage.mode"
        """``secure`` when the storage was formatted with the SCRAM users, else ``plain``."""
        self.security: StackSecurity | None = None
        """Set by ``LocalStack`` for a secured stack before ``up``."""
        self.process = ManagedProcess(
            "Kafka", self.home / "kafka.pid", ("kafka.Kafka", str(self.config_file))
        )

    def install(self) -> Path:
        """Fetch the broker's jars (first run only); return the folder holding them."""
        return ensure_jars(
            self.settings.kafka_jar_dir, self.settings.kafka_version, self.settings.log4j_version
        )

    def up(self) -> ComponentStatus:
        """Start the broker unless ours is already running; return once it serves requests."""
        pid = self.process.pid()
        if pid is not None:
            self._wait_ready()
            return self.status()
        self._check_ports_free()
        lib_dir = self.install()
        java = java_executable()
        self._write_configs()
        self._format(java, lib_dir)
        self.process.start(
            self._java_command(java, lib_dir, "kafka.Kafka", str(self.config_file)), self.out_file
        )
        self.version_file.write_text(kafka_version_of(lib_dir) + "\n")
        try:
            self._wait_ready()
        except StackError:
            self.process.stop(self.settings.stop_timeout_s)
            raise
        return self.status()

    def down(self) -> int | None:
        """Stop our broker if it runs; return its pid."""
        return self.process.stop(self.settings.stop_timeout_s)

    def status(self) -> ComponentStatus:
        """Whether our broker runs and answers, with its pid, address and version."""
        pid = self.process.pid()
        if pid is None:
            state = State.STOPPED
        elif port_open(self.settings.host, self.settings.kafka_port):
            state = State.RUNNING
        else:
            state = State.UNRESPONSIVE
        return ComponentStatus(
            name="kafka",
            state=state,
            pid=pid,
            address=self.settings.kafka_bootstrap,
            version=f"Apache Kafka {self.version()}",
            log_file=self.logs_dir / "server.log",
        )

    def version(self) -> str:
        """Version of the running broker (as started), else the configured one."""
        if self.process.pid() is not None and self.version_file.exists():
            return self.version_file.read_text().strip()
        return self.settings.kafka_version

    def _check_ports_free(self) -> None:
        """Fail clearly when another program already listens on one of our ports."""
        for port, variable in (
            (self.settings.kafka_port, "KAFKA_PORT"),
            (self.settings.controller_port, "CONTROLLER_PORT"),
        ):
            if port_open(self.settings.host, port):
                raise StackError(
                    f"{self.settings.host}:{port} is in use by a process this stack did not "
                    f"start; stop it or choose another port with LOUPE_STACK_{variable}"
                )

    def _write_configs(self) -> None:
        """Write server.properties and the log4j2 configuration into the state folder."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        properties = render_server_properties(self.settings, self.data_dir, self.security)
        write_file(self.config_file, properties.encode(), private=True)  # may hold a password
        self.log4j_file.write_text(read_asset("log4j2.properties"))

    def _format(self, java: str, lib_dir: Path) -> None:
        """Format the storage once with a fresh cluster id (skipped when already formatted).

        A secured stack's storage is formatted with its SCRAM users (KIP-900), so they exist
        before the broker first starts; a storage formatted for the other mode is refused.
        """
        mode = "plain" if self.security is None else "secure"
        if (self.data_dir / "meta.properties").exists():
            formatted = (
                self.storage_mode_file.read_text().strip()
                if self.storage_mode_file.exists()
                else "plain"
            )
            if formatted != mode:
                raise StackError(
                    f"the Kafka storage in {self.data_dir} was formatted for a {formatted} stack; "
                    "`loupe stack down --purge` deletes it so that it can start "
                    f"{'secured' if mode == 'secure' else 'plain'}"
                )
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)
        cluster_id = self._storage_tool(java, lib_dir, "random-uuid").strip().splitlines()[-1]
        log.info("formatting Kafka storage in %s (cluster id %s)", self.data_dir, cluster_id)
        try:
            self._storage_tool(
                java,
                lib_dir,
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                *self._scram_arguments(),
            )
        except StackError:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise
        self.storage_mode_file.write_text(mode + "\n")

    def _scram_arguments(self) -> list[str]:
        """``--add-scram`` for each user of a secured stack (none for a plain one)."""
        if self.security is None:
            return []
        arguments = []
        for user, password in self.security.scram_users().items():
            credential = f"name={user},password={password.get_secret_value()}"
            arguments += ["--add-scram", f"{MECHANISM.value}=[{credential}]"]
        return arguments

    def connection(self) -> KafkaConnection:
        """How the stack itself connects: as the admin user when secured."""
        if self.security is None:
            return KafkaConnection(bootstrap_servers=self.settings.kafka_bootstrap)
        return self.security.kafka(self.settings.kafka_bootstrap, ADMIN_USER)

    def _storage_tool(self, java: str, lib_dir: Path, *args: str) -> str:
        """Run ``kafka.tools.StorageTool`` and return its output."""
        result = subprocess.run(
            self._java_command(java, lib_dir, "kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            output = result.stderr or result.stdout
            raise StackError(f"kafka StorageTool {args[0]} failed:\n{output}")
        return result.stdout

    def _java_command(self, java: str, lib_dir: Path, main_class: str, *args: str) -> list[str]:
        """A JVM command line running ``main_class`` on the broker's classpath."""
        return [
            java,
            f"-Xmx{self.settings.kafka_heap}",
            *JVM_FLAGS,
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            str(lib_dir / "*"),
            main_class,
            *args,
        ]

    def _wait_ready(self) -> None:
        """Wait until the broker creates and lists a probe topic, or raise with log pointers."""
        timeout = self.settings.kafka_start_timeout_s
        deadline = time.monotonic() + timeout
        while True:
            if self.process.pid() is None:
                raise StackError(
                    f"Kafka exited during startup; see {self.out_file} and "
                    f"{self.logs_dir / 'server.log'}\n{self._log_tail()}"
                )
            if port_open(self.settings.host, self.settings.kafka_port) and self._probe():
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"Kafka was not ready within {timeout:.0f}s; see "
                    f"{self.logs_dir / 'server.log'} and {self.out_file}"
                )
            time.sleep(0.5)

    def _probe(self) -> bool:
        """Whether a probe topic can be created and is listed with a leader."""
        admin = admin_client(self.connection(), {"socket.connection.setup.timeout.ms": 5000})
        try:
            future = admin.create_topics([NewTopic(PROBE_TOPIC, 1, 1)], operation_timeout=5)
            try:
                future[PROBE_TOPIC].result(timeout=10)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            topic = admin.list_topics(topic=PROBE_TOPIC, timeout=5).topics.get(PROBE_TOPIC)
            if topic is None or topic.error is not None or not topic.partitions:
                return False
            if any(partition.leader < 0 for partition in topic.partitions.values()):
                return False
            admin.delete_topics([PROBE_TOPIC], operation_timeout=5)[PROBE_TOPIC].result(timeout=10)
        except KafkaException as exc:
            log.debug("Kafka not ready yet: %s", exc)
            return False
        return True

    def _log_tail(self, lines: int = 10) -> str:
        """The last lines of the console output and the server log (fatal errors land there)."""
        tails = []
        for path in (self.out_file, self.logs_dir / "server.log"):
            if path.exists() and path.stat().st_size:
                text = path.read_text(errors="replace").splitlines()[-lines:]
                tails.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(tails)
