"""Settings: typed, validated at start, and documented. Every bad value is refused with
one line naming the variable (or the flag) that holds it; secrets are never repeated."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collab.settings import Settings, SettingsError, describe

from .support import BIN, ROOT

SUPPORTED = "collab supports sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST/DB"
ORIGIN_FORM = "not scheme://host[:port] with http or https"
HOOK = "https://hooks.example/in"


def test_defaults_and_environment() -> None:
    settings = Settings.from_env({"COLLAB_FLUSH_INTERVAL": "0.25", "COLLAB_LOG_LEVEL": " DEBUG"})
    assert settings.flush_interval == 0.25
    assert settings.log_level == "debug"
    assert settings.database_url == "sqlite+aiosqlite:///collab.db"
    assert settings.webhook_url == ""
    assert (settings.webhook_debounce, settings.webhook_max_wait) == (2.0, 30.0)
    assert (settings.webhook_timeout, settings.hook_timeout) == (10.0, 5.0)


def test_keyword_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_PORT", "9999")
    assert Settings().port == 8000
    assert Settings(port=9000).port == 9000
    assert Settings.from_env().port == 9999
    with pytest.raises(SettingsError) as refused:
        Settings(port=-1)
    assert str(refused.value) == "COLLAB_PORT=-1 is below the minimum 0"
    with pytest.raises(SettingsError) as refused:
        Settings(no_such_setting=1)
    assert str(refused.value) == "COLLAB_NO_SUCH_SETTING=1 is not a setting"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COLLAB_PORT": "eighty"}, "COLLAB_PORT='eighty' is not a valid int"),
        ({"COLLAB_PORT": "80.5"}, "COLLAB_PORT='80.5' is not a valid int"),
        ({"COLLAB_PORT": "80\n80"}, "COLLAB_PORT='80\\n80' is not a valid int"),
        ({"COLLAB_PORT": "70000"}, "COLLAB_PORT='70000' is above the maximum 65535"),
        ({"COLLAB_PORT": "-1"}, "COLLAB_PORT='-1' is below the minimum 0"),
        (
            {"COLLAB_MAX_MESSAGE_SIZE": "9" * 100_000},
            "COLLAB_MAX_MESSAGE_SIZE='" + "9" * 79 + "… is not a valid int (too many digits)",
        ),
        (
            {"COLLAB_MAX_MESSAGE_SIZE": str(2**41)},
            f"COLLAB_MAX_MESSAGE_SIZE='{2**41}' is above the maximum {2**40}",
        ),
        ({"COLLAB_FLUSH_INTERVAL": "0"}, "COLLAB_FLUSH_INTERVAL='0' is below the minimum 0.005"),
        ({"COLLAB_FLUSH_INTERVAL": "inf"}, "COLLAB_FLUSH_INTERVAL='inf' is not a finite number"),
        ({"COLLAB_FLUSH_INTERVAL": "-inf"}, "COLLAB_FLUSH_INTERVAL='-inf' is not a finite number"),
        (
            {"COLLAB_SNAPSHOT_INTERVAL": "nan"},
            "COLLAB_SNAPSHOT_INTERVAL='nan' is not a finite number",
        ),
        ({"COLLAB_PING_TIMEOUT": "1e400"}, "COLLAB_PING_TIMEOUT='1e400' is not a finite number"),
        (
            {"COLLAB_ROOM_RELEASE_DELAY": "1e300"},
            "COLLAB_ROOM_RELEASE_DELAY='1e300' is above the maximum 1000000.0",
        ),
        ({"COLLAB_PING_INTERVAL": "soon"}, "COLLAB_PING_INTERVAL='soon' is not a valid float"),
        ({"COLLAB_LOG_FORMAT": "xml"}, "COLLAB_LOG_FORMAT='xml' is not one of: text, json"),
        (
            {"COLLAB_LOG_LEVEL": ""},
            "COLLAB_LOG_LEVEL='' is not one of: debug, info, warning, error",
        ),
        ({"COLLAB_MAX_WRITE_LAG": "0.1"}, "COLLAB_MAX_WRITE_LAG must exceed COLLAB_FLUSH_INTERVAL"),
        (
            {"COLLAB_REDIS_URL": "redis://r", "COLLAB_REDIS_PROCESS_TIMEOUT": "4"},
            "COLLAB_REDIS_PROCESS_TIMEOUT must exceed twice COLLAB_REDIS_HEARTBEAT_INTERVAL",
        ),
        (
            {"COLLAB_REDIS_URL": "http://r:6379"},
            "COLLAB_REDIS_URL must start with redis://, rediss:// or unix://",
        ),
        ({"COLLAB_HOST": ""}, "COLLAB_HOST='' is neither an IP address nor a host name"),
        (
            {"COLLAB_HOST": "http://0.0.0.0"},
            "COLLAB_HOST='http://0.0.0.0' is neither an IP address nor a host name",
        ),
        # The database: only the two drivers collab is built and tested on.
        (
            {"COLLAB_DATABASE_URL": "postgresql://x/y"},
            f"COLLAB_DATABASE_URL names the driver 'postgresql'; {SUPPORTED}",
        ),
        (
            {"COLLAB_DATABASE_URL": "postgresql+psycopg://u:pw@h/db"},
            f"COLLAB_DATABASE_URL names the driver 'postgresql+psycopg'; {SUPPORTED}",
        ),
        (
            {"COLLAB_DATABASE_URL": "mysql+aiomysql://u:pw@h/db"},
            f"COLLAB_DATABASE_URL names the driver 'mysql+aiomysql'; {SUPPORTED}",
        ),
        (
            {"COLLAB_DATABASE_URL": "sqlite:///collab.db"},
            f"COLLAB_DATABASE_URL names the driver 'sqlite'; {SUPPORTED}",
        ),
        ({"COLLAB_DATABASE_URL": "collab.db"}, "COLLAB_DATABASE_URL is not a database URL"),
        ({"COLLAB_DATABASE_URL": ""}, "COLLAB_DATABASE_URL is not a database URL"),
        # Origins: what a browser sends, scheme://host[:port].
        (
            {"COLLAB_ALLOWED_ORIGINS": "example.com"},
            f"COLLAB_ALLOWED_ORIGINS lists 'example.com', {ORIGIN_FORM}",
        ),
        (
            {"COLLAB_ALLOWED_ORIGINS": "https://ok.example, ftp://files.example"},
            f"COLLAB_ALLOWED_ORIGINS lists 'ftp://files.example', {ORIGIN_FORM}",
        ),
        (
            {"COLLAB_ALLOWED_ORIGINS": "https://app.example/editor"},
            f"COLLAB_ALLOWED_ORIGINS lists 'https://app.example/editor', {ORIGIN_FORM}",
        ),
        (
            {"COLLAB_ALLOWED_ORIGINS": "https://app.example:99999"},
            f"COLLAB_ALLOWED_ORIGINS lists 'https://app.example:99999', {ORIGIN_FORM}",
        ),
        (
            {"COLLAB_ALLOWED_ORIGINS": "https://me@app.example"},
            f"COLLAB_ALLOWED_ORIGINS lists 'https://me@app.example', {ORIGIN_FORM}",
        ),
        (
            {"COLLAB_ALLOWED_ORIGINS": "https://[::1"},
            f"COLLAB_ALLOWED_ORIGINS lists 'https://[::1', {ORIGIN_FORM}",
        ),
        ({"COLLAB_ALLOWED_ORIGINS": "*"}, f"COLLAB_ALLOWED_ORIGINS lists '*', {ORIGIN_FORM}"),
        ({"COLLAB_ALLOWED_ORIGINS": "null"}, f"COLLAB_ALLOWED_ORIGINS lists 'null', {ORIGIN_FORM}"),
        # Webhooks and hooks.
        (
            {"COLLAB_WEBHOOK_URL": "ftp://hooks.example", "COLLAB_WEBHOOK_SECRET": "s"},
            "COLLAB_WEBHOOK_URL must be an http:// or https:// URL",
        ),
        (
            {"COLLAB_WEBHOOK_URL": "https://", "COLLAB_WEBHOOK_SECRET": "s"},
            "COLLAB_WEBHOOK_URL must be an http:// or https:// URL",
        ),
        (
            {"COLLAB_WEBHOOK_URL": HOOK},
            "COLLAB_WEBHOOK_SECRET must be set with COLLAB_WEBHOOK_URL",
        ),
        (
            {"COLLAB_WEBHOOK_DEBOUNCE": "-1"},
            "COLLAB_WEBHOOK_DEBOUNCE='-1' is below the minimum 0.0",
        ),
        (
            {"COLLAB_WEBHOOK_DEBOUNCE": "5", "COLLAB_WEBHOOK_MAX_WAIT": "4"},
            "COLLAB_WEBHOOK_MAX_WAIT must be at least COLLAB_WEBHOOK_DEBOUNCE",
        ),
        (
            {"COLLAB_WEBHOOK_MAX_WAIT": "nan"},
            "COLLAB_WEBHOOK_MAX_WAIT='nan' is not a finite number",
        ),
        (
            {"COLLAB_WEBHOOK_TIMEOUT": "0"},
            "COLLAB_WEBHOOK_TIMEOUT='0' is below the minimum 0.001",
        ),
        ({"COLLAB_HOOK_TIMEOUT": "0"}, "COLLAB_HOOK_TIMEOUT='0' is below the minimum 0.001"),
        ({"COLLAB_HOOK_TIMEOUT": "[5]"}, "COLLAB_HOOK_TIMEOUT='[5]' is not a valid float"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"COLLAB_AUTH_SECRET": "hunter2-too-short"}, "COLLAB_AUTH_SECRET"),
        ({"COLLAB_AUTH_PUBLIC_KEY": "hunter2-not-a-key"}, "COLLAB_AUTH_PUBLIC_KEY"),
        ({"COLLAB_DATABASE_URL": "mysql+aiomysql://u:hunter2@h/db"}, "COLLAB_DATABASE_URL"),
        ({"COLLAB_DATABASE_URL": "postgresql://u:hunter2@h/db"}, "COLLAB_DATABASE_URL"),
        ({"COLLAB_REDIS_URL": "http://u:hunter2@r"}, "COLLAB_REDIS_URL"),
        (
            {"COLLAB_WEBHOOK_URL": "ftp://u:hunter2@h", "COLLAB_WEBHOOK_SECRET": "s"},
            "COLLAB_WEBHOOK_URL",
        ),
        ({"COLLAB_WEBHOOK_URL": "https://u:hunter2@h/in"}, "COLLAB_WEBHOOK_SECRET"),
    ],
)
def test_a_refused_secret_is_not_repeated(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert str(refused.value).startswith(named + " ")
    assert "hunter2" not in str(refused.value)


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://u:hunter2@h/db",
        redis_url="redis://u:hunter2@r",
        auth_secret="hunter2" * 8,
        webhook_url="https://u:hunter2@h/in",
        webhook_secret="hunter2",
    )
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)


def test_a_flag_is_named_as_the_flag() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"COLLAB_PORT": "99999"}, flags={"port": "--port"}, port="99999")
    assert str(refused.value) == "--port '99999' is above the maximum 65535"
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({}, flags={"host": "--host"}, host="a host")
    assert str(refused.value) == "--host 'a host' is neither an IP address nor a host name"
    # The flag is valid: the bad value is the variable's, and the error says so.
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"COLLAB_PORT": "x"}, flags={"host": "--host"}, host="::1")
    assert str(refused.value) == "COLLAB_PORT='x' is not a valid int"


def test_allowed_origins_are_spelled_as_browsers_send_them() -> None:
    settings = Settings.from_env(
        {
            "COLLAB_ALLOWED_ORIGINS": "HTTPS://App.Example:443, http://localhost:5173/,,http://[::1]:80"
        }
    )
    assert settings.origins == {"https://app.example", "http://localhost:5173", "http://[::1]"}
    assert Settings().origins == frozenset()


def test_webhooks_with_a_secret_and_supported_databases_are_accepted() -> None:
    settings = Settings.from_env(
        {
            "COLLAB_WEBHOOK_URL": HOOK,
            "COLLAB_WEBHOOK_SECRET": "s",
            "COLLAB_WEBHOOK_DEBOUNCE": "0",
            "COLLAB_WEBHOOK_MAX_WAIT": "0",
            "COLLAB_DATABASE_URL": "postgresql+asyncpg://collab@db.internal:5432/collab",
            "COLLAB_HOST": "::",
        }
    )
    assert (settings.webhook_url, settings.webhook_max_wait) == (HOOK, 0.0)
    Settings.from_env({"COLLAB_DATABASE_URL": "sqlite+aiosqlite://", "COLLAB_HOST": "localhost"})


def test_an_sqlite_file_must_be_writable(tmp_path: Path) -> None:
    def check(path: object) -> str | None:
        settings = Settings.from_env({"COLLAB_DATABASE_URL": f"sqlite+aiosqlite:///{path}"})
        try:
            settings.check_database_path()
        except SettingsError as exc:
            return str(exc)
        return None

    prefix = "COLLAB_DATABASE_URL names an SQLite file, but"
    assert check(tmp_path / "collab.db") is None
    assert check(tmp_path / "missing" / "collab.db") == (
        f"{prefix} directory {tmp_path / 'missing'} does not exist"
    )
    (tmp_path / "file").write_text("")
    assert check(tmp_path / "file" / "collab.db") == (
        f"{prefix} directory {tmp_path / 'file'} does not exist"
    )
    (tmp_path / "dir.db").mkdir()
    assert check(tmp_path / "dir.db") == f"{prefix} {tmp_path / 'dir.db'} is a directory"
    for memory in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        Settings.from_env({"COLLAB_DATABASE_URL": memory}).check_database_path()


def _collab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "collab"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (
            ("serve",),
            {"COLLAB_MAX_MESSAGE_SIZE": "big"},
            "COLLAB_MAX_MESSAGE_SIZE='big' is not a valid int",
        ),
        (
            ("serve",),
            {"COLLAB_PING_TIMEOUT": "nan"},
            "COLLAB_PING_TIMEOUT='nan' is not a finite number",
        ),
        (
            ("serve",),
            {"COLLAB_DATABASE_URL": "postgresql+psycopg://u:pw@h/db"},
            f"COLLAB_DATABASE_URL names the driver 'postgresql+psycopg'; {SUPPORTED}",
        ),
        (
            ("migrate",),
            {"COLLAB_DATABASE_URL": "mysql+aiomysql://u:pw@h/db"},
            f"COLLAB_DATABASE_URL names the driver 'mysql+aiomysql'; {SUPPORTED}",
        ),
        (
            ("serve",),
            {"COLLAB_ALLOWED_ORIGINS": "example.com"},
            f"COLLAB_ALLOWED_ORIGINS lists 'example.com', {ORIGIN_FORM}",
        ),
        (
            ("serve",),
            {"COLLAB_WEBHOOK_URL": HOOK},
            "COLLAB_WEBHOOK_SECRET must be set with COLLAB_WEBHOOK_URL",
        ),
        (("serve", "--port", "99999"), {}, "--port '99999' is above the maximum 65535"),
        (("serve", "--port", "http"), {}, "--port 'http' is not a valid int"),
        (
            ("serve", "--port", "99999"),
            {"COLLAB_PORT": "1"},
            "--port '99999' is above the maximum 65535",
        ),
        (("serve",), {"COLLAB_PORT": "99999"}, "COLLAB_PORT='99999' is above the maximum 65535"),
        (
            ("serve", "--host", "0.0.0.0/0"),
            {},
            "--host '0.0.0.0/0' is neither an IP address nor a host name",
        ),
    ],
)
def test_a_bad_setting_stops_the_command_with_one_line(
    args: tuple[str, ...], env: dict[str, str], line: str
) -> None:
    result = _collab(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"collab: error: {line}"]


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_an_unusable_sqlite_file_stops_the_command_with_one_line(
    command: str, tmp_path: Path
) -> None:
    missing = tmp_path / "missing"
    result = _collab(command, env={"COLLAB_DATABASE_URL": f"sqlite+aiosqlite:///{missing}/c.db"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"collab: error: COLLAB_DATABASE_URL names an SQLite file, but directory {missing} "
        "does not exist"
    ]
    assert not missing.exists()

    with _unwritable_directory(tmp_path / "locked") as locked:
        result = _collab(command, env={"COLLAB_DATABASE_URL": f"sqlite+aiosqlite:///{locked}/c.db"})
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"collab: error: COLLAB_DATABASE_URL names an SQLite file, but directory {locked} "
            "is not writable"
        ]
        assert list(locked.iterdir()) == []


@contextlib.contextmanager
def _unwritable_directory(path: Path) -> Iterator[Path]:
    """A directory nobody can write in: read-only, and immutable (which root obeys too)."""
    path.mkdir(mode=0o555)
    if os.geteuid() != 0:
        yield path
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("root, and chattr +i is not available: no directory root cannot write")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    help_text = subprocess.run(
        [str(BIN / "collab"), "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name, default, _meaning in describe():
        assert f"| `{name}` | `{default}` |" in readme, name
        assert name in help_text, name


@pytest.mark.parametrize("value", ["ftp://host/token", "host/token", "//evil.example/t", "http://"])
def test_token_refresh_url_is_a_url_or_a_path(value: str) -> None:
    with pytest.raises(SettingsError, match="COLLAB_TOKEN_REFRESH_URL"):
        Settings.from_env({"COLLAB_TOKEN_REFRESH_URL": value})
    for good in ("/auth/collab-token", "https://app.example/auth/token"):
        assert Settings.from_env({"COLLAB_TOKEN_REFRESH_URL": good}).token_refresh_url == good
