"""Every FACEID_* variable is read by faceid.settings and nowhere else."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from faceid.errors import BadInputError
from faceid.settings import VARIABLES, Settings, current

SRC = Path(__file__).resolve().parents[1] / "src" / "faceid"


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "settings.py" and re.search(r"os\.environ|getenv", path.read_text(encoding="utf-8"))
    ]
    assert readers == ["paths.py"]  # XDG_* and the Windows folders, not faceid's own variables
    assert "FACEID_" not in re.sub(r'"""[\s\S]*?"""', "", (SRC / "paths.py").read_text(encoding="utf-8"))


def test_every_variable_named_in_the_code_is_a_setting() -> None:
    named = set()
    for path in SRC.rglob("*"):
        if path.suffix in (".py", ".html"):
            named |= set(re.findall(r"FACEID_[A-Z_]+[A-Z]", path.read_text(encoding="utf-8")))
    assert named <= set(VARIABLES), named - set(VARIABLES)


def test_from_env_parses_every_variable() -> None:
    env = {name: "1" for name in VARIABLES} | {
        "FACEID_DATA_DIR": "~/faces",
        "FACEID_DB": "postgresql://a@h/db",
        "FACEID_DATABASE_URL": "sqlite:///other",
        "FACEID_MAX_UPLOAD_MB": "2.5",
        "FACEID_API_KEY": "fid_secret",
    }
    settings = Settings.from_env(env)
    assert settings.data_dir == Path("~/faces").expanduser()
    assert settings.db == "postgresql://a@h/db"  # FACEID_DB wins over FACEID_DATABASE_URL
    assert settings.threads == 1 and settings.max_upload_mb == 2.5 and settings.no_jit is True
    assert all(getattr(settings, f.name) is not None for f in fields(settings))
    assert "fid_secret" not in repr(settings)


def test_unset_and_empty_mean_the_default() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"FACEID_DB": "", "FACEID_THREADS": "", "FACEID_NO_JIT": "0"}) == Settings()


@pytest.mark.parametrize("value", ["many", "-1"])
def test_a_bad_number_names_the_variable(value: str) -> None:
    with pytest.raises(BadInputError, match="FACEID_THREADS"):
        Settings.from_env({"FACEID_THREADS": value})


def test_current_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEID_CACHE_DIR", str(tmp_path))
    assert current().cache_dir == tmp_path
    assert current() is current()  # parsed once for the same values
    monkeypatch.delenv("FACEID_CACHE_DIR")
    assert current().cache_dir is None
