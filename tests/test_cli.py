"""The xtl command line."""

import pytest

from xtl import cli


def test_help_lists_the_demo(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_demo_says_the_toy_model_is_not_yet_available(capsys):
    assert cli.main(["demo"]) == 2
    assert "toy model is not yet available" in capsys.readouterr().err


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweeep"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sweeep'" in capsys.readouterr().err
