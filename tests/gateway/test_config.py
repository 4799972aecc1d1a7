"""Config errors name the file, the line and the key, and say what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import Config, load_config, parse_config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "house.toml")
    return [str(p) for p in info.value.problems]


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config.mqtt.port == 1883
    assert config.api.host == "127.0.0.1"
    assert config.api.port != 8123
    assert config.store.commit_interval_s == 5.0


def test_the_example_config_is_valid_and_its_defaults_are_the_real_ones() -> None:
    example = load_config(ROOT / "config.example.toml")
    assert example.model_dump(exclude={"source"}) == Config().model_dump(exclude={"source"}) | {
        "adapters": {"zigbee2mqtt": {}}
    }


def test_unknown_keys_and_wrong_types_point_at_their_line() -> None:
    text = (
        '[gateway]\nname = "home"\n\n[mqtt]\nhost = "broker"\nprot = 1884\nport = "high"\n\n'
        "[store]\ncommit_interval_s = 0\n"
    )
    found = problems(text)
    assert any(p.startswith("house.toml:6: mqtt.prot: unknown key") for p in found)
    assert any(p.startswith("house.toml:7: mqtt.port:") and "'high'" in p for p in found)
    assert any(p.startswith("house.toml:10: store.commit_interval_s:") and "greater than 0" in p for p in found)


def test_toml_syntax_errors_give_the_line() -> None:
    (found,) = problems('[mqtt]\nhost = "a"\nport = \n')
    assert found.startswith("house.toml:3:")
    assert "not valid TOML" in found


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[areas]\n"kitchen/plug" = "kitchen"\n')
    assert main(["config", "check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[api]\nport = 70000\n\n[adapters.zigbee2mqtt]\nbase_topic = "z2m/#"\n')
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: api.port:" in err
    bad.write_text('[adapters.zigbee2mqtt]\nbase_topic = "z2m/#"\n')
    assert main(["config", "check", str(bad)]) == 2
    assert f"{bad}:2: adapters.zigbee2mqtt.base_topic:" in capsys.readouterr().err
    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
