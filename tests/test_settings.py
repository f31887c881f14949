"""Settings: typed, validated at start, and documented."""

from __future__ import annotations

import os
import subprocess

import pytest

from collab.settings import Settings, SettingsError, describe

from .support import BIN, ROOT


def test_defaults_and_environment() -> None:
    settings = Settings.from_env({"COLLAB_FLUSH_INTERVAL": "0.25", "COLLAB_LOG_LEVEL": "DEBUG"})
    assert settings.flush_interval == 0.25
    assert settings.log_level == "debug"
    assert settings.database_url == "sqlite+aiosqlite:///collab.db"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COLLAB_PORT": "eighty"}, "COLLAB_PORT='eighty' is not a valid int"),
        ({"COLLAB_PORT": "70000"}, "above the maximum"),
        ({"COLLAB_FLUSH_INTERVAL": "0"}, "below the minimum"),
        ({"COLLAB_FLUSH_INTERVAL": "inf"}, "not a finite number"),
        ({"COLLAB_SNAPSHOT_INTERVAL": "nan"}, "not a finite number"),
        ({"COLLAB_LOG_FORMAT": "xml"}, "is not one of: text, json"),
        ({"COLLAB_MAX_WRITE_LAG": "0.1"}, "must exceed COLLAB_FLUSH_INTERVAL"),
        ({"COLLAB_DATABASE_URL": "postgresql://x/y"}, "must name an async driver"),
        ({"COLLAB_WEBHOOK_URL": "ftp://hooks.example"}, "COLLAB_WEBHOOK_URL must start with"),
        ({"COLLAB_WEBHOOK_URL": "https://hooks.example/in"}, "COLLAB_WEBHOOK_SECRET must be set"),
        ({"COLLAB_WEBHOOK_DEBOUNCE": "-1"}, "COLLAB_WEBHOOK_DEBOUNCE=-1.0 is below the minimum"),
        (
            {"COLLAB_WEBHOOK_DEBOUNCE": "5", "COLLAB_WEBHOOK_MAX_WAIT": "4"},
            "COLLAB_WEBHOOK_MAX_WAIT must be at least COLLAB_WEBHOOK_DEBOUNCE",
        ),
        ({"COLLAB_WEBHOOK_TIMEOUT": "0"}, "COLLAB_WEBHOOK_TIMEOUT=0.0 is below the minimum"),
        ({"COLLAB_HOOK_TIMEOUT": "0"}, "COLLAB_HOOK_TIMEOUT=0.0 is below the minimum"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_a_bad_setting_stops_serve_with_one_line() -> None:
    result = subprocess.run(
        [str(BIN / "collab"), "serve"],
        env={**os.environ, "COLLAB_MAX_MESSAGE_SIZE": "big"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "collab: error: COLLAB_MAX_MESSAGE_SIZE='big' is not a valid int"
    ]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    help_text = subprocess.run(
        [str(BIN / "collab"), "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name, default, _meaning in describe():
        assert f"| `{name}` | `{default}` |" in readme, name
        assert name in help_text, name
