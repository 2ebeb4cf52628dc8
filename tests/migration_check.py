"""`python -m tests.migration_check`: on a fresh SQLite file and a fresh PostgreSQL database run
`flask db upgrade`, `flask db check` (no drift between models and migrations), a full downgrade and an
upgrade again, through the real `flask` command line."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def flask(env: dict[str, str], *args: str) -> None:
    cmd = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
    print("$", "flask", *args, flush=True)
    subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env, "AR_ENV": "testing"}, check=True)


def cycle(env: dict[str, str]) -> None:
    flask(env, "db", "upgrade")
    flask(env, "db", "check")
    flask(env, "db", "downgrade", "base")
    flask(env, "db", "upgrade")
    flask(env, "db", "check")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/check.db"
        print("-- SQLite", flush=True)
        cycle({"DATABASE_URL": url})

    name = f"ar_migcheck_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        print("-- PostgreSQL", flush=True)
        cycle(
            {
                "DATABASE_URL": f"postgresql://ar_app@127.0.0.1:5432/{name}",
                "DATABASE_OWNER_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
            }
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print("migrations OK on SQLite and PostgreSQL")


if __name__ == "__main__":
    main()
