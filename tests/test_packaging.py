"""What pip installs, and how the checkout's research code stays importable (docs/layout.md, "Imports from the
checkout"): the wheel holds ``softstep`` only, and the Makefile's venv recipe puts the checkout's root on the
venv's ``sys.path`` with a ``.pth`` file, so ``python scripts/<name>.py`` imports ``experiments`` from any folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from setuptools import find_packages

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
REPO = Path(__file__).resolve().parents[1]


def find_config() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]


def test_only_softstep_is_packaged():
    cfg = find_config()
    assert cfg["include"] == ["softstep*"], cfg
    found = find_packages(where=str(REPO), include=cfg["include"], exclude=cfg.get("exclude", ()))
    assert found and {p.split(".")[0] for p in found} == {"softstep"}, found


def make(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(["make", "-C", str(REPO), *args], capture_output=True, text=True, check=True)


def test_venv_recipe_writes_the_root_pth():
    # the recipe as make would run it (-n: print, run nothing; -B: as if out of date)
    recipe = make("-n", "-B", ".venv/.installed").stdout.splitlines()
    install = next(i for i, line in enumerate(recipe) if "pip install" in line and " -e ." in line)
    writes = [i for i, line in enumerate(recipe) if "softstep-checkout.pth" in line and str(REPO) in line]
    assert writes and writes[0] > install, "the venv recipe must write softstep-checkout.pth after pip install -e ."


def test_root_pth_puts_the_checkout_on_a_fresh_environments_path(tmp_path):
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    py = env / "bin" / "python"
    probe = "import importlib.util as u, sys; print(*(u.find_spec(n) is not None for n in sys.argv[1:]))"
    names = ["softstep", "data", "extractors", "experiments", "benchmarks"]

    def found() -> str:  # from a folder outside the checkout, as python scripts/<name>.py has it
        return subprocess.run([py, "-c", probe, *names], cwd=tmp_path, capture_output=True, text=True).stdout.split()

    assert found() == ["False"] * len(names)
    make("root-pth", f"PY={py}")
    assert found() == ["True"] * len(names)
    path = subprocess.run(
        [py, "-c", "import sys; print(*sys.path, sep='\\n')"], cwd=tmp_path, capture_output=True, text=True
    )
    assert str(REPO) in path.stdout.splitlines()


def test_scripts_do_not_edit_sys_path():
    for f in sorted((REPO / "scripts").glob("*.py")):
        assert "sys.path" not in f.read_text(), f"{f.name} edits sys.path; the environment's .pth provides the root"


@pytest.mark.skipif(Path(sys.prefix) != REPO / ".venv", reason="the tests run outside the project venv")
def test_a_script_runs_from_another_folder(tmp_path):
    script = REPO / "scripts" / "make_tables.py"
    out = subprocess.run([sys.executable, script, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
