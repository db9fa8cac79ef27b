"""The import rules of docs/architecture.md ("Layers"): `lint-imports` checks the contracts in
.importlinter (cli > bench > service > annvq, annvq.kernels a leaf, annvq free of the server, CLI
and HDF5 packages); a child interpreter checks what `import annvq` actually loads, which
import-linter cannot tell apart from imports inside functions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Never loaded by importing annvq or any of its modules (annvq.io imports h5py inside read_hdf5).
SERVER_CLI_HDF5 = ("fastapi", "starlette", "uvicorn", "click", "h5py")


def lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    if exe.exists():
        return str(exe)
    found = shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports not found: install the test extra (pip install -e '.[test]').")
    return found


def test_import_contracts_are_kept():
    out = subprocess.run([lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"lint-imports failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"


def test_importing_annvq_loads_no_server_cli_or_hdf5_package():
    probe = ("import importlib, pkgutil, sys\n"
             "import annvq\n"
             "for m in pkgutil.walk_packages(annvq.__path__, 'annvq.'):\n"
             "    importlib.import_module(m.name)\n"
             f"print(sorted(set({SERVER_CLI_HDF5!r}) & {{n.split('.')[0] for n in sys.modules}}))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing annvq loaded {out.stdout.strip()}"
