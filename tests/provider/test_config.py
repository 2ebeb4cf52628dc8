"""Start-up configuration: a wrong variable stops the app with a message that names it."""

from __future__ import annotations

import pytest

from provider.app import create_app
from provider.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"AR_ENV": "staging"}, "AR_ENV"),
        ({"AR_ENV": "production", "DATABASE_URL": "postgresql://app@db/ar"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"DATABASE_URL": "mysql://root@localhost/ar"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://app@127.0.0.1:5432"}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:///x.db", "DATABASE_OWNER_URL": "postgresql://o@h/db"}, "DATABASE_OWNER_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"LOGIN_RATE_LIMIT": "five"}, "LOGIN_RATE_LIMIT"),
        ({"LOGIN_RATE_LIMIT": "0"}, "LOGIN_RATE_LIMIT"),
        ({"MAX_UPLOAD_MB": "-1"}, "MAX_UPLOAD_MB"),
        ({"DATABASE_APP_ROLE": "ar_app; DROP TABLE users"}, "DATABASE_APP_ROLE"),
    ],
)
def test_bad_configuration_names_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(environ)
    with pytest.raises(ConfigError, match=variable):
        create_app(environ)


def test_defaults_are_sqlite_in_instance_and_in_process_jobs() -> None:
    settings = load_settings({})
    assert settings.env == "development"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("instance/ar.db")
    assert settings.redis_url is None
    assert settings.flask_config()["JOBS_MODE"] == "thread"


def test_production_needs_a_real_secret_and_gets_secure_cookies() -> None:
    settings = load_settings({"AR_ENV": "production", "SECRET_KEY": "x" * 40, "REDIS_URL": "redis://127.0.0.1:6379/0"})
    config = settings.flask_config()
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["JOBS_MODE"] == "rq"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"


def test_postgres_urls_use_psycopg3_and_owner_defaults_to_app_url() -> None:
    settings = load_settings({"DATABASE_URL": "postgres://ar_app@127.0.0.1/ar"})
    assert settings.database_url == "postgresql+psycopg://ar_app@127.0.0.1/ar"
    assert settings.database_owner_url == settings.database_url
