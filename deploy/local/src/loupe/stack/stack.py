"""``LocalStack``: the whole local stack (Kafka + Redis + Loupe topics) behind one object."""

from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path

from loupe.runtime.acls import AclNames, Service, grant_services, user_name
from loupe.runtime.connections import KafkaConnection, RedisConnection
from loupe.runtime.kafka import ensure_topics
from loupe.runtime.redis_acls import REDIS_GRANTS
from loupe.stack.errors import StackError
from loupe.stack.kafka import KafkaBroker, upsert_scram_users
from loupe.stack.models import ComponentStatus, StackInfo
from loupe.stack.processes import file_lock
from loupe.stack.redis import RedisServer
from loupe.stack.security import StackSecurity
from loupe.stack.settings import StackSettings, get_settings
from loupe.stack.system import DEV_TOOLS, STACK_TOOLS, ensure_tools, java_executable
from loupe.stack.tls import write_file

log = logging.getLogger(__name__)


def _write_env(path: Path, env: dict[str, str]) -> None:
    """A sourceable file of ``env`` (it holds passwords: mode 0600)."""
    lines = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    write_file(path, ("\n".join(lines) + "\n").encode(), private=True)


class LocalStack:
    """A real Kafka broker and redis-server on loopback, owned through pid files.

    Every operation is idempotent and only ever touches processes this stack started (those
    named by the pid files in ``settings.state_dir``), so stacks with different state folders
    and ports run side by side.
    """

    def __init__(self, settings: StackSettings | None = None) -> None:
        settings = settings or get_settings()
        if not settings.secure and settings.security_dir.exists():
            settings = settings.model_copy(update={"secure": True})  # secured until purged
        self.settings = settings
        self.kafka = KafkaBroker(self.settings)
        self.redis = RedisServer(self.settings)
        self._lock_file = self.settings.state_dir / "stack.lock"
        if settings.security_dir.exists():
            self._use_security(renew_certificates=False)

    def _use_security(self, *, renew_certificates: bool) -> StackSecurity:
        """Load (making what is missing) the secured stack's material and hand it to both."""
        security = StackSecurity.prepare(
            self.settings.security_dir, self.settings.host, renew_certificates=renew_certificates
        )
        self.kafka.security = self.redis.security = security
        return security

    def install(self, *, system_packages: bool = True) -> None:
        """Install what the stack, tests and demo need, and fetch the Kafka jars; start nothing.

        With ``system_packages``, missing tools (Java, Maven, redis-server, kcat, prometheus,
        chromium) are installed with apt-get as root, or reported with what to install.
        """
        if system_packages:
            ensure_tools((*STACK_TOOLS, *DEV_TOOLS))
        java_executable()
        self.kafka.install()

    def up(self) -> StackInfo:
        """Start whatever is not running yet, wait until ready, create the Loupe topics."""
        with file_lock(self._lock_file):
            security = None
            if self.settings.secure:
                stopped = self.kafka.process.pid() is None and self.redis.process.pid() is None
                security = self._use_security(renew_certificates=stopped)
            kafka_status = self.kafka.up()
            redis_status = self.redis.up()
        topics = ensure_topics(
            self.kafka.connection(),
            prefix=self.settings.topic_prefix,
            partitions=self.settings.topic_partitions,
        )
        if kafka_status.pid is None or redis_status.pid is None:
            raise StackError(
                "Kafka or Redis stopped right after starting; see `loupe stack status`"
            )
        kafka = (
            security.kafka(self.settings.kafka_bootstrap)
            if security
            else KafkaConnection(bootstrap_servers=self.settings.kafka_bootstrap)
        )
        services = self._grant_services(security) if security else {}
        info = StackInfo(
            kafka_bootstrap=self.settings.kafka_bootstrap,
            redis_url=self.settings.redis_url,
            kafka_version=self.kafka.version(),
            redis_version=redis_status.version.removeprefix("Redis "),
            topic_prefix=self.settings.topic_prefix,
            topics=tuple(topics),
            kafka_pid=kafka_status.pid,
            redis_pid=redis_status.pid,
            state_dir=self.settings.state_dir,
            kafka=kafka,
            redis=self.redis.connection(),
            env_file=security.env_file if security else None,
            services=services,
            redis_services=self._redis_services(security) if security else {},
        )
        if security is not None:
            _write_env(security.env_file, info.env())
            for service in Service:
                _write_env(security.service_env_file(service), info.env(service))
        return info

    def _grant_services(self, security: StackSecurity) -> dict[Service, KafkaConnection]:
        """Give each service its SCRAM user and its grants for the stack's topic prefix (the
        ids the services' own variables name, ``AclNames``); return their connections."""
        admin = self.kafka.connection()
        upsert_scram_users(admin, security.service_users())
        names = AclNames(topic_prefix=self.settings.topic_prefix)
        grant_services(admin, names)
        bootstrap = self.settings.kafka_bootstrap
        return {service: security.kafka(bootstrap, user_name(service)) for service in Service}

    def _redis_services(self, security: StackSecurity) -> dict[Service, RedisConnection]:
        """The Redis connection of each service that uses Redis, as its own ACL user (the
        users ``RedisServer`` configured from ``loupe.runtime.redis_acls``)."""
        url = self.settings.redis_url
        return {service: security.redis(url, service) for service in REDIS_GRANTS}

    def down(self, *, purge: bool = False) -> list[ComponentStatus]:
        """Stop what this stack started (Kafka first); with ``purge`` also delete its data.

        Returns the status of each component before it was stopped.
        """
        with file_lock(self._lock_file):
            before = self.status()
            self.kafka.down()
            self.redis.down()
            if purge:
                for home in (self.kafka.home, self.redis.home, self.settings.security_dir):
                    log.info("deleting %s", home)
                    shutil.rmtree(home, ignore_errors=True)
        return before

    def status(self) -> list[ComponentStatus]:
        """Status of Kafka and Redis."""
        return [self.kafka.status(), self.redis.status()]
