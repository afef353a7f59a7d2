"""Grants from the Python client: a `Client` given a grant (or finding one in
``$LATCHKEY_GRANT``) authenticates every connection with it, reads what the grant allows
and nothing else, and never shows the grant in its `repr` or in an error."""

from __future__ import annotations

import json

import pytest

from latchkey import Client, PermissionDenied, Secret

from conftest import Env, Harness

POLICY = '[policy]\nrequire_grant = ["guarded", "other"]\n'


def start(env: Env, harness: Harness):
    config = env.root / "policy.toml"
    config.write_text(POLICY)
    daemon = harness.start("--config", str(config))
    for service, key in [("guarded", "sk-guarded"), ("other", "sk-other"), ("open", "sk-open")]:
        done = env.cli(["set", service], key)
        assert done.returncode == 0, done.stderr
    return daemon


def grant_for(env: Env, service: str) -> str:
    created = env.cli(["grant", "create", "--service", service, "--ttl", "1h", "--json"])
    assert created.returncode == 0, created.stderr
    return json.loads(created.stdout)["token"]


def test_a_grant_reads_what_it_allows_and_nothing_else(
    env: Env, harness: Harness, monkeypatch
) -> None:
    monkeypatch.delenv("LATCHKEY_GRANT", raising=False)
    start(env, harness)
    grant = grant_for(env, "guarded")
    with Client(env.socket, grant=grant) as client:
        assert client.get("guarded").secret.expose() == "sk-guarded"
        assert "with a grant" in repr(client)
        assert grant not in repr(client)
        with pytest.raises(PermissionDenied) as other:
            client.get("other")
        assert grant not in str(other.value) and grant not in repr(other.value)
        # A connection that presented a grant may not write or list.
        with pytest.raises(PermissionDenied):
            client.set_api_key("guarded", "sk-replaced")
        with pytest.raises(PermissionDenied):
            client.list()
    # Without a grant the protected entry is refused, the open one served.
    with Client(env.socket, grant=None) as client:
        with pytest.raises(PermissionDenied):
            client.get("guarded")
        assert client.get("open").secret.expose() == "sk-open"
    # Nothing was replaced.
    shown = env.cli(["get", "open"])
    assert shown.returncode == 0 and shown.stdout.strip() == "sk-open"


def test_the_grant_comes_from_latchkey_grant(env: Env, harness: Harness, monkeypatch) -> None:
    start(env, harness)
    monkeypatch.setenv("LATCHKEY_GRANT", grant_for(env, "other"))
    with Client(env.socket) as client:
        assert client.get("other").secret.expose() == "sk-other"
        with pytest.raises(PermissionDenied):
            client.get("guarded")
    # A grant given explicitly wins over the variable.
    with Client(env.socket, grant=Secret(grant_for(env, "guarded"))) as client:
        assert client.get("guarded").secret.expose() == "sk-guarded"


def test_a_revoked_or_forged_grant_is_refused_at_once(env: Env, harness: Harness) -> None:
    start(env, harness)
    created = env.cli(["grant", "create", "--service", "guarded", "--ttl", "1h", "--json"])
    assert created.returncode == 0, created.stderr
    minted = json.loads(created.stdout)
    with Client(env.socket, grant=minted["token"]) as client:
        assert client.get("guarded").secret.expose() == "sk-guarded"
        revoked = env.cli(["grant", "revoke", minted["id"]])
        assert revoked.returncode == 0, revoked.stderr
        # The open connection is checked again at every request.
        with pytest.raises(PermissionDenied):
            client.get("guarded")
    head, payload, signature = minted["token"].split(".")
    forged = f"{head}.{payload}.{'A' * len(signature)}"
    for token in [minted["token"], forged, "not-a-grant"]:
        with Client(env.socket, grant=token) as client:
            with pytest.raises(PermissionDenied) as refused:
                client.get("guarded")
        assert token not in str(refused.value) and token not in repr(refused.value)


def test_an_empty_or_mistyped_grant_is_refused_before_connecting(env: Env) -> None:
    with pytest.raises(ValueError):
        Client(env.socket, grant=Secret(""))
    with pytest.raises(TypeError):
        Client(env.socket, grant=42)  # type: ignore[arg-type]
