"""Files nested to absurd depths (issue 20 finding 6): a clear error naming the file and line, never a
RecursionError traceback, from every command that reads TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main

DEEP = {
    "arrays": "[gateway]\nx = " + "[" * 5000 + "]" * 5000 + "\n",
    "inline tables": "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
}


@pytest.mark.parametrize("command", [["config", "check"], ["profile", "check"], ["definition", "check"]])
@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deep_nesting_is_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str],
                                         shape: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(DEEP[shape])
    code = main([*command, str(path)])
    said = capsys.readouterr()
    err = said.out + said.err  # profile check reports on stdout, the others on stderr
    assert code in (1, 2)
    assert "Traceback" not in err and "RecursionError" not in err
    assert f"{path}:" in err
    assert "nested more than 64 levels deep" in err
