"""``exgate db``, ``exgate tenants``, ``exgate secrets`` as a user runs them (subprocesses on an
SQLite file named by ``EXGATE_DATABASE_URL``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from exgate.store import SecretBox, Store


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXGATE_")}
    return {**env, "EXGATE_DATABASE_URL": url, **extra}


def exgate(url: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exgate", *args], env=_env(url, **extra), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/exgate.db"


def test_a_command_on_an_unmigrated_database_names_db_upgrade(url) -> None:
    for args in (["tenants", "list"], ["tenants", "create", "acme"], ["tenants", "revoke", "acme"]):
        run = exgate(url, *args)
        assert run.returncode == 2, run
        assert run.stderr.startswith("error: database ") and "is not migrated: run `exgate db upgrade`" in run.stderr
    run = exgate(url, "secrets", "rotate", EXGATE_SECRET_KEYS=Fernet.generate_key().decode())
    assert run.returncode == 2 and "run `exgate db upgrade`" in run.stderr


def test_db_upgrade_on_a_fresh_file_then_downgrade(url, tmp_path) -> None:
    run = exgate(url, "db", "upgrade")
    assert run.returncode == 0, run.stderr
    assert "upgraded from base (empty) to 0003 (head)" in run.stdout
    assert (tmp_path / "exgate.db").is_file()
    assert "already at revision 0003 (head)" in exgate(url, "db", "upgrade").stdout
    assert "at revision 0003 (head: 0003)" in exgate(url, "db", "current").stdout
    assert "downgraded from 0003 to 0001" in exgate(url, "db", "downgrade", "0001").stdout
    assert "upgraded from 0001 to 0003" in exgate(url, "db", "upgrade").stdout
    run = exgate(url, "db", "downgrade", "nowhere")
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "nowhere" in run.stderr
    run = exgate("mysql://root:hunter2@localhost/x", "db", "upgrade")
    assert run.returncode == 2 and "EXGATE_DATABASE_URL" in run.stderr and "hunter2" not in run.stderr


def test_tenants_create_list_revoke(url) -> None:
    assert exgate(url, "db", "upgrade").returncode == 0
    run = exgate(url, "tenants", "create", "acme")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    key = lines[-1]
    assert key.startswith("exg_") and key == key.strip() and " " not in key
    assert any("shown once" in line for line in lines[:-1]) and all(key not in line for line in lines[:-1])

    async def check(expect: bool) -> None:
        store = Store(url, None)
        try:
            tenant = await store.tenant_by_key(key)
            assert (tenant is not None and tenant.name == "acme") is expect
        finally:
            await store.close()

    asyncio.run(check(True))
    run = exgate(url, "tenants", "create", "acme")
    assert run.returncode == 2 and "already exists" in run.stderr and key not in run.stderr

    run = exgate(url, "tenants", "list")
    assert run.returncode == 0 and "acme" in run.stdout and key not in run.stdout
    assert "exg_" not in run.stdout and "revoked" in run.stdout.splitlines()[0]

    run = exgate(url, "tenants", "rekey", "acme")
    assert run.returncode == 0 and "shown once" in run.stdout
    old, key = key, run.stdout.splitlines()[-1]
    assert key.startswith("exg_") and key != old
    asyncio.run(check(True))

    run = exgate(url, "tenants", "revoke", "acme")
    assert run.returncode == 0 and "tenant acme revoked" in run.stdout
    asyncio.run(check(False))
    listed = exgate(url, "tenants", "list").stdout.splitlines()
    assert listed[1].startswith("acme") and listed[1].rstrip().endswith("UTC")  # revoked at ...
    run = exgate(url, "tenants", "revoke", "nobody")
    assert run.returncode == 2 and "no tenant named 'nobody'" in run.stderr


def test_secrets_rotate(url) -> None:
    assert exgate(url, "db", "upgrade").returncode == 0
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    async def seed() -> None:
        store = Store(url, SecretBox([old]))
        try:
            tenant, _ = await store.create_tenant("acme")
            for user in ("alice", "bob"):
                await store.create_connection(tenant.id, user, "bybit", "k", {"secret": "x"}, {}, is_primary=True)
        finally:
            await store.close()

    asyncio.run(seed())
    run = exgate(url, "secrets", "rotate")
    assert run.returncode == 2 and "EXGATE_SECRET_KEYS is not set" in run.stderr
    run = exgate(url, "secrets", "rotate", EXGATE_SECRET_KEYS="not-a-key")
    assert run.returncode == 2 and "EXGATE_SECRET_KEYS" in run.stderr and "not-a-key" not in run.stderr
    run = exgate(url, "secrets", "rotate", EXGATE_SECRET_KEYS=f"{new},{old}")
    assert run.returncode == 0, run.stderr
    assert "re-encrypted 2 connections" in run.stdout and new not in run.stdout + run.stderr

    async def read() -> list[dict]:
        store = Store(url, SecretBox([new]))
        try:
            tenant = (await store.list_tenants())[0]
            return [store.credentials(await store.resolve_connection(tenant.id, u, None)) for u in ("alice", "bob")]
        finally:
            await store.close()

    assert asyncio.run(read()) == [{"secret": "x"}, {"secret": "x"}]
