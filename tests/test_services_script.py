"""`make test` sets up what the suite needs, or says exactly what to install (scripts/services.sh, shared with CI)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _path_without(directory: Path, *missing: str) -> str:
    """A PATH of this machine's commands, less ``missing``."""
    directory.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for command in Path(folder).glob("*"):
            if command.name not in missing and not (directory / command.name).exists():
                (directory / command.name).symlink_to(command)
    return str(directory)


def test_make_test_without_root_names_the_missing_package_and_stops_before_running_anything():
    # As an ordinary user (nobody), who cannot install packages, and whose PATH must be readable by them.
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        Path(folder).chmod(0o755)
        path = _path_without(Path(folder) / "bin", "chromium")
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "make", "-s", "test"],
                                cwd=ROOT, env={"PATH": path, "HOME": folder}, capture_output=True, text=True,
                                timeout=120)
    assert result.returncode != 0
    assert "sudo apt-get install chromium" in result.stderr
    assert "pytest" not in result.stdout + result.stderr


def test_ci_sets_up_through_the_same_script_as_make_test():
    ci = (ROOT / ".ci/run").read_text()
    assert "bash scripts/services.sh" in ci and "make test" in ci
    dry = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, env={**os.environ},
                         timeout=60)
    assert "scripts/services.sh" in dry.stdout
