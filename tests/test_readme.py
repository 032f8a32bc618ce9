"""The README walk-through runs as written, in order, in a fresh ``MODELYARD_HOME``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def walkthrough_commands() -> list[str]:
    """The commands of the first bash block under '## Walk-through', comments removed."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Walk-through", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the walk-through has no bash block"
    commands = []
    for line in block.group(1).splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command and not command.startswith(". "):  # activating the venv is the setup
            commands.append(command)
    return commands


def test_walkthrough_names_no_fixed_home() -> None:
    commands = walkthrough_commands()
    assert commands[0] == "modelyard quickstart"
    assert sum(command.startswith("modelyard quickstart") for command in commands) == 1
    assert not any("~/.modelyard" in command for command in commands)


@pytest.mark.slow
def test_walkthrough_runs_in_order_in_a_fresh_home(tmp_path: Path) -> None:
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("MODELYARD_REGISTRY_URL", None)
    runner = f"{shlex.quote(sys.executable)} -m modelyard"
    for command in walkthrough_commands():
        shell = re.sub(r"^modelyard\b", runner, command)
        result = subprocess.run(
            ["bash", "-c", shell],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if command.startswith("modelyard quickstart"):
            assert "house-prices:1" in result.stdout
        if command.startswith("modelyard train"):
            assert "house-prices:2" in result.stdout
    assert (tmp_path / "report.html").is_file()
