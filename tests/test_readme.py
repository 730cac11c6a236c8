"""The README's two setup commands are the ones CI runs, in the same order."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_commands():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    setup = text[text.index("## Setup"):]
    setup = setup[:setup.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)\n```", setup, re.S)


def test_readme_gives_two_commands():
    commands = _setup_commands()
    assert len(commands) == 2, commands
    install, tests = commands
    assert "python3 -m venv .venv" in install and "examples/intro.py" in install
    assert tests.startswith(".venv/bin/python -m pytest")


def test_ci_runs_the_readme_commands_in_order():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read().splitlines()
    install, tests = _setup_commands()
    assert install in ci and tests in ci
    assert ci.index(install) < ci.index(tests)
