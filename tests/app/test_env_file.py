"""Which ``.env`` the bot reads: ``MUSICBOT_ENV_FILE``, else the current folder's, else the
project folder's; and, when DISCORD_TOKEN is missing, where it looked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import ConfigError, EnvFileSearch, load_settings
from peers.process import refused_start
from tests.app.test_config import TOKEN

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """A current folder and a project folder, both without a .env yet."""
    cwd, project = tmp_path / "cwd", tmp_path / "project"
    cwd.mkdir()
    project.mkdir()
    return cwd, project


def _env(folder: Path, text: str, name: str = ".env") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_current_folder_wins_over_the_project_folder(places: tuple[Path, Path]) -> None:
    cwd, project = places
    _env(project, f"DISCORD_TOKEN={TOKEN}\nGUILD_IDS=2\n")
    search = EnvFileSearch(cwd=cwd, project_dir=project)
    settings = load_settings({}, env_file=search)
    assert settings.env_file == project / ".env"
    assert settings.guild_ids == (2,)

    _env(cwd, f"DISCORD_TOKEN={TOKEN}\nGUILD_IDS=1\n")
    settings = load_settings({}, env_file=search)
    assert settings.env_file == cwd / ".env"
    assert settings.guild_ids == (1,)


def test_musicbot_env_file_names_the_file_and_the_environment_still_wins(
    places: tuple[Path, Path],
) -> None:
    cwd, project = places
    _env(cwd, f"DISCORD_TOKEN={TOKEN}\nGUILD_IDS=1\n")
    named = _env(project, f"DISCORD_TOKEN={TOKEN}\nGUILD_IDS=3\nLOG_LEVEL=DEBUG\n", "bot.env")
    search = EnvFileSearch(cwd=cwd, project_dir=project)
    settings = load_settings(
        {"MUSICBOT_ENV_FILE": str(named), "LOG_LEVEL": "WARNING"}, env_file=search
    )
    assert settings.env_file == named
    assert settings.guild_ids == (3,)
    assert settings.log_level == 30


def test_a_missing_or_unreadable_musicbot_env_file_is_an_error_naming_it(
    places: tuple[Path, Path],
) -> None:
    cwd, project = places
    _env(cwd, f"DISCORD_TOKEN={TOKEN}\n")  # would do, but the named file is what counts
    search = EnvFileSearch(cwd=cwd, project_dir=project)
    missing = project / "nope.env"
    binary = project / "binary.env"
    binary.write_bytes(b"DISCORD_TOKEN=\xff\xfe\n")
    for named, problem in (
        (missing, "does not exist"),
        (project, "is a folder"),
        (binary, "cannot be read"),
    ):
        with pytest.raises(ConfigError) as raised:
            load_settings({"MUSICBOT_ENV_FILE": str(named)}, env_file=search)
        assert raised.value.key == "MUSICBOT_ENV_FILE"
        assert str(raised.value).startswith("MUSICBOT_ENV_FILE: ")
        assert str(named) in str(raised.value)
        assert problem in str(raised.value)


def test_a_relative_musicbot_env_file_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_settings({"MUSICBOT_ENV_FILE": "conf/bot.env"}, env_file=EnvFileSearch())
    assert str(tmp_path / "conf" / "bot.env") in str(raised.value)


def test_a_missing_token_says_which_files_were_looked_for(places: tuple[Path, Path]) -> None:
    cwd, project = places
    with pytest.raises(ConfigError) as raised:
        load_settings({}, env_file=EnvFileSearch(cwd=cwd, project_dir=project))
    assert raised.value.key == "DISCORD_TOKEN"
    assert str(raised.value) == (
        f"DISCORD_TOKEN: is not set (looked in {cwd / '.env'} and {project / '.env'}; "
        "none exists \N{EM DASH} copy .env.example to .env)"
    )


def test_a_missing_token_names_the_file_that_was_read(places: tuple[Path, Path]) -> None:
    cwd, project = places
    # .env.example copied, the token left empty: the usual first mistake.
    read = _env(project, "DISCORD_TOKEN=\nLAVALINK_PASSWORD=hunter2-secret\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({}, env_file=EnvFileSearch(cwd=cwd, project_dir=project))
    assert f"nor in {read}" in str(raised.value)
    assert str(cwd / ".env") not in str(raised.value)
    assert "hunter2-secret" not in str(raised.value)


def test_the_project_folder_is_looked_in_once_when_it_is_the_current_one(
    places: tuple[Path, Path],
) -> None:
    _, project = places
    with pytest.raises(ConfigError) as raised:
        load_settings({}, env_file=EnvFileSearch(cwd=project, project_dir=project))
    assert str(raised.value).count(str(project / ".env")) == 1
    assert "which does not exist" in str(raised.value)


# --- python -m bot, started from another folder than the project's ----------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of this checkout's ``bot`` package and pyproject.toml: a project folder whose
    .env the test may write (the real checkout's belongs to the developer)."""
    project = tmp_path / "checkout"
    shutil.copytree(ROOT / "bot", project / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    return project


def _run_from(cwd: Path, project: Path) -> list[str]:
    _, line = refused_start({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project)}, cwd)
    return [line]


def test_python_m_bot_from_elsewhere_reads_the_project_folders_env(
    tmp_path: Path, checkout: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (line,) = _run_from(elsewhere, checkout)
    assert line == (
        "musicbot: configuration error: DISCORD_TOKEN: is not set (looked in "
        f"{elsewhere / '.env'} and {checkout / '.env'}; none exists \N{EM DASH} copy "
        ".env.example to .env)"
    )

    # The token is found there: the next problem is the one the file holds on purpose.
    (checkout / ".env").write_text(f"DISCORD_TOKEN={TOKEN}\nLAVALINK_URL=nope\n")
    (line,) = _run_from(elsewhere, checkout)
    assert line.startswith("musicbot: configuration error: LAVALINK_URL: ")
    assert TOKEN not in line
