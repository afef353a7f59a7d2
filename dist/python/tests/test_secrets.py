"""Secrets never show: not in the repr or str of a `Secret`, a result, an entry, a status
or an error, not in f-strings, not in a pickle, and not in the daemon's log after a set,
get and clear through this client."""

from __future__ import annotations

import pickle
import traceback
from datetime import datetime, timezone

import pytest

from latchkey import Client, InvalidRequest, NotFound, Secret, TooLarge

SECRETS = [
    "sk-python-canary-apikey-1",
    "pw-python-canary-2",
    "at-python-canary-3",
    "rt-python-canary-4",
    "id-python-canary-5",
]


def assert_hidden(*values: object) -> None:
    for value in values:
        for shown in (repr(value), str(value), f"{value}", f"{value!r:>200}"):
            for secret in SECRETS:
                assert secret not in shown, f"{secret} shown in {shown!r}"


def test_a_secret_shows_only_its_length() -> None:
    secret = Secret(SECRETS[0])
    assert repr(secret) == f"Secret(<redacted, {len(SECRETS[0])} chars>)"
    assert str(secret) == f"<redacted, {len(SECRETS[0])} chars>"
    assert f"Bearer {secret}" == f"Bearer <redacted, {len(SECRETS[0])} chars>"
    assert "%s %r" % (secret, secret) == f"{secret} {secret!r}"
    assert_hidden(secret, [secret], {"k": secret}, (secret,))
    assert secret.expose() == SECRETS[0]
    assert secret == Secret(SECRETS[0]) and secret != Secret("other")
    assert secret != SECRETS[0]  # a Secret is not a str
    assert len(secret) == len(SECRETS[0]) and bool(secret) and not Secret("")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_results_entries_status_and_errors_never_show_secrets(daemon) -> None:
    with Client(daemon.socket) as client:
        entries = [
            client.set_api_key("api", SECRETS[0]),
            client.set_password("db", "alice", SECRETS[1]),
            client.set_oauth2(
                "oauth",
                SECRETS[2],
                refresh_token=SECRETS[3],
                id_token=SECRETS[4],
                expires_at=datetime(2099, 1, 1, tzinfo=timezone.utc),
                scopes=["read"],
            ),
        ]
        results = [client.get("api"), client.get("db"), client.get("oauth")]
        assert [r.secret.expose() for r in results] == SECRETS[:3]
        assert_hidden(*entries, *results, client.list(), client.status(), client)
        # Errors about requests that carried a secret do not repeat it.
        errors = []
        for call in (
            lambda: client.set_api_key("bad\nname", SECRETS[0]),
            lambda: client.set_api_key("huge", SECRETS[0] * 5000),
            lambda: client.get("missing"),
        ):
            with pytest.raises((InvalidRequest, TooLarge, NotFound)) as caught:
                call()
            errors.append(caught.value)
            assert_hidden(
                "".join(traceback.format_exception_only(type(caught.value), caught.value))
            )
        assert_hidden(*errors)
        assert client.clear("api")
    # Nor did the daemon log any of them.
    for secret in SECRETS:
        assert secret not in daemon.log
    assert 'method="get"' in daemon.log  # the log was captured
