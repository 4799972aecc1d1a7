"""`hearth plugin new`: the names it takes, what it writes, and that it never overwrites without --force. (That
the package it writes installs, type-checks and passes its tests: test_plugin_install.py.)"""

from __future__ import annotations

import argparse
import io
import tomllib
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.devkit.scaffold import ScaffoldError, check_name, create, run

EXPECTED_FILES = [
    ".gitignore", "README.md", "pyproject.toml",
    "src/hearth_acme/__init__.py", "src/hearth_acme/adapter.py", "src/hearth_acme/captures/acme.jsonl",
    "src/hearth_acme/codec.py", "src/hearth_acme/py.typed",
    "tests/test_adapter.py", "tests/test_codec.py", "tests/test_replay.py",
]


def test_it_writes_a_package_with_the_entry_point(tmp_path: Path) -> None:
    target = create("acme", tmp_path)
    assert target == tmp_path / "hearth-acme"
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == EXPECTED_FILES
    project = tomllib.loads((target / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "hearth-acme"
    assert "hearth-gateway" in project["project"]["dependencies"]
    assert project["project"]["entry-points"]["hearth.adapters"] == {"acme": "hearth_acme.adapter:AcmeAdapter"}
    assert project["tool"]["setuptools"]["package-data"]["hearth_acme"] == ["py.typed", "captures/*.jsonl"]
    adapter = (target / "src/hearth_acme/adapter.py").read_text(encoding="utf-8")
    assert 'requires_sdk: ClassVar[str] = ">=1.1,<2"' in adapter and "class AcmeAdapter" in adapter
    text = "".join(p.read_text(encoding="utf-8") for p in target.rglob("*") if p.is_file())
    assert "{{" not in text and "__package__" not in text
    assert "hearth plugin check acme" in (target / "README.md").read_text(encoding="utf-8")


def test_underscored_names_make_class_and_distribution_names(tmp_path: Path) -> None:
    target = create("acme_air", tmp_path)
    assert target.name == "hearth-acme-air"
    assert "class AcmeAirAdapter" in (target / "src/hearth_acme_air/adapter.py").read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "why"), [
    ("Acme", "lowercase letters"), ("acme-air", "such as 'acme_air'"), ("1acme", "starting with a letter"),
    ("", "cannot name a plugin"), ("class", "keyword"), ("tasmota", "one of the gateway's own adapters"),
    ("zigbee2mqtt", "one of the gateway's own adapters"), ("gateway", "reserved"),
    ("a" * 21, "longer than 20"),
])
def test_names_it_refuses(name: str, why: str) -> None:
    with pytest.raises(ScaffoldError, match=why):
        check_name(name)


def test_it_never_overwrites_without_force(tmp_path: Path) -> None:
    target = create("acme", tmp_path)
    codec = target / "src/hearth_acme/codec.py"
    codec.write_text("# mine\n", encoding="utf-8")
    (target / "NOTES.md").write_text("mine\n", encoding="utf-8")
    with pytest.raises(ScaffoldError, match="not empty: nothing was written"):
        create("acme", tmp_path)
    assert codec.read_text(encoding="utf-8") == "# mine\n"
    create("acme", tmp_path, force=True)
    assert codec.read_text(encoding="utf-8") != "# mine\n"
    assert (target / "NOTES.md").read_text(encoding="utf-8") == "mine\n"  # not the template's: kept


def test_an_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "hearth-acme").mkdir()
    assert (create("acme", tmp_path) / "pyproject.toml").is_file()


def test_run_says_what_next_or_why_not(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(argparse.Namespace(name="acme", dir=str(tmp_path), force=False), out, err) == 0
    assert "hearth replay src/hearth_acme/captures/acme.jsonl" in out.getvalue() and err.getvalue() == ""
    assert run(argparse.Namespace(name="acme", dir=str(tmp_path), force=False), out, err) == 1
    assert "hearth plugin new:" in err.getvalue() and "--force" in err.getvalue()


def test_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "new", "acme", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "hearth-acme" / "pyproject.toml").is_file()
    assert main(["plugin", "new", "ble", "--dir", str(tmp_path)]) == 1
    assert "one of the gateway's own adapters" in capsys.readouterr().err
