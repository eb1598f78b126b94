"""The installed package is the checkout's folders, each under its tick2trade name."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"tick2trade.protocol": "protocol", "tick2trade.gateware": "gateware",
           "tick2trade.host": "host", "tick2trade.sim": "sim", "tick2trade.bench": "bench",
           "tick2trade.cli": "cli", "tick2trade.testing": "tests/support"}


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_package_dir_maps_each_floor_to_its_folder():
    assert _config()["package-dir"] == FOLDERS


def test_every_subpackage_folder_is_listed():
    """A folder with an __init__.py that pyproject.toml does not list would be left out of
    a wheel (and of an editable install), so its imports fail only on a user's machine."""
    on_disk = set()
    for name, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "migrations" in rel.parts or "__pycache__" in rel.parts:
                continue
            on_disk.add(".".join((name, *rel.parts)))
    assert set(_config()["packages"]) == on_disk


@pytest.mark.parametrize("name", ["protocol", "gateware", "host", "sim", "bench", "cli"])
def test_a_folder_is_not_importable_under_its_bare_name(name, tmp_path):
    """`import host` fails even from the checkout's root, where the folder is on the path:
    one module must not load twice under two names."""
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"import tick2trade.{name}" in proc.stderr
    assert importlib.import_module(f"tick2trade.{name}").__name__ == f"tick2trade.{name}"
