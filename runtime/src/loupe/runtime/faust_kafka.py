"""``KafkaConnection`` for Faust apps (aiokafka): broker URLs and ``broker_credentials``.

Needs the ``faust`` extra (``loupe-runtime[faust]``); only the services running Faust import it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.parse
import urllib.request
from typing import Any

import faust
from aiokafka.abc import AbstractTokenProvider

from loupe.runtime.connections import KafkaConnection, SaslMechanism

TOKEN_TIMEOUT_S = 10.0
"""Longest wait for the identity provider's token endpoint."""


def faust_app_kwargs(kafka: KafkaConnection) -> dict[str, Any]:
    """``broker`` and ``broker_credentials`` keyword arguments of ``faust.App`` for ``kafka``.

    Use as ``faust.App(id, **faust_app_kwargs(settings.kafka), ...)``.
    """
    return {
        "broker": [f"kafka://{host}" for host in kafka.bootstrap_list],
        "broker_credentials": faust_credentials(kafka),
    }


def faust_credentials(kafka: KafkaConnection) -> faust.auth.Credentials | None:
    """Faust's credentials object for ``kafka`` (None for PLAINTEXT)."""
    context = kafka.ssl_context()
    if not kafka.security_protocol.sasl:
        return faust.SSLCredentials(context) if context is not None else None
    assert kafka.username is not None and kafka.password is not None  # checked by the model
    if kafka.sasl_mechanism is SaslMechanism.OAUTHBEARER:
        assert kafka.oauth_token_url is not None  # checked by the model
        provider = ClientCredentialsTokenProvider(
            kafka.oauth_token_url,
            kafka.username.get_secret_value(),
            kafka.password.get_secret_value(),
            kafka.oauth_scope,
        )
        return faust.OAuthCredentials(oauth_cb=provider, ssl_context=context)
    assert kafka.sasl_mechanism is not None  # checked by the model
    return faust.SASLCredentials(
        username=kafka.username.get_secret_value(),
        password=kafka.password.get_secret_value(),
        mechanism=kafka.sasl_mechanism.value,
        ssl_context=context,
    )


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAuth 2 client-credentials tokens for aiokafka's OAUTHBEARER, as librdkafka's ``oidc``.

    A token is reused until 80% of its lifetime has passed, so connecting many clients costs one
    request to the identity provider.
    """

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, scope: str | None
    ) -> None:
        self._token_url = token_url
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._scope = scope
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self._token_url}>"

    async def token(self) -> str:
        """A valid access token, fetched again once the current one is 80% through its life."""
        async with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                token, lifetime_s = await asyncio.to_thread(self._fetch)
                self._token, self._renew_at = token, time.monotonic() + 0.8 * lifetime_s
            return self._token

    def _fetch(self) -> tuple[str, float]:
        """POST the client-credentials grant; return the access token and its lifetime."""
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        request = urllib.request.Request(  # noqa: S310 - the configured https token endpoint
            self._token_url,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": f"Basic {self._basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=TOKEN_TIMEOUT_S) as response:  # noqa: S310
            body = json.loads(response.read())
        return str(body["access_token"]), float(body.get("expires_in", 300))
