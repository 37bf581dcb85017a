"""The console script: help lists registered commands; bad input is one line and exit 2."""

import subprocess
import sys

from gencrystal.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert " ".join(cmd.words) in out


def test_unknown_command_is_one_line_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "frobnicate" in err[0]


def test_python_dash_m_is_the_same_entry_point():
    proc = subprocess.run([sys.executable, "-m", "gencrystal", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "commands:" in proc.stdout
