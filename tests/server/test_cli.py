"""The account commands: users and API keys from the command line (for when nobody can log in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceid.cli import main
from faceid.store import Store
from faceid.store.accounts import Accounts


def test_user_and_key_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = str(tmp_path / "data")
    monkeypatch.setenv("FACEID_NEW_PASSWORD", "a-long-password")
    assert main(["user", "add", "alice", "--role", "operator", "--data-dir", data]) == 0
    assert main(["user", "add", "alice", "--data-dir", data]) == 2  # taken
    assert main(["user", "list", "--json", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    users = json.loads(out[out.index("[") :])
    assert [(u["username"], u["role"]) for u in users] == [("alice", "operator")]
    assert main(["user", "role", "alice", "admin", "--data-dir", data]) == 0
    monkeypatch.setenv("FACEID_NEW_PASSWORD", "another-password")
    assert main(["user", "password", "alice", "--data-dir", data]) == 0
    assert main(["apikey", "create", "door", "--scope", "ingest", "--json", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    key = json.loads(out[out.index("{") :])
    with Store(data, model_id="x") as store:
        accounts = Accounts(store.database)
        assert accounts.login("alice", "another-password").user.role == "admin"
        assert accounts.authenticate_key(key["key"]).scopes == ["ingest"]
    assert main(["apikey", "create", "cam", "--json", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    device = json.loads(out[out.index("{") :])
    assert device["scopes"] == ["read", "ingest"]  # the device preset: what a camera or a monitor needs
    assert main(["apikey", "revoke", str(key["id"]), "--data-dir", data]) == 0
    with Store(data, model_id="x") as store:
        assert Accounts(store.database).authenticate_key(key["key"]) is None
    assert main(["user", "remove", "alice", "--data-dir", data]) == 2  # the last admin stays
    assert main(["user", "remove", "nobody", "--data-dir", data]) == 2
    assert main(["serve", "--port", "70000", "--data-dir", data]) == 2
