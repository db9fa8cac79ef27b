"""Install annvq's client into a VectorDBBench installation, as an upstream pull request would:
copy ``annvq/`` to ``vectordb_bench/backend/clients/annvq``, add ``DB.Annvq`` with its three
lookups (client, config, case config) to ``backend/clients/__init__.py`` and the ``annvq``
command to ``cli/vectordbbench.py``. Idempotent; run it with VectorDBBench's Python:

    /tmp/vdb-venv/bin/python bench/vectordbbench/register.py
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARK = "DB.Annvq"
#: what each DB property returns for annvq: (function, import line, name)
LOOKUPS = [("init_cls", "from .annvq.annvq import Annvq", "Annvq"),
           ("config_cls", "from .annvq.config import AnnvqConfig", "AnnvqConfig"),
           ("case_config_cls", "from .annvq.config import AnnvqIndexConfig", "AnnvqIndexConfig")]


def _insert_after(text: str, pattern: str, addition: str, what: str) -> str:
    match = re.search(pattern, text, flags=re.DOTALL)
    if match is None:
        raise RuntimeError(f"VectorDBBench's layout changed: no {what} found; register annvq by hand.")
    return text[:match.end()] + addition + text[match.end():]


def patch_clients(text: str) -> str:
    """``backend/clients/__init__.py`` with the DB member and a branch at the top of each lookup."""
    if MARK in text:
        return text
    text = _insert_after(text, r"class DB\(Enum\):.*?\n(?=\n    @property\n    def init_cls)",
                         '    Annvq = "Annvq"\n', "DB enum before init_cls")
    for func, line, name in LOOKUPS:
        text = _insert_after(text, rf"    def {func}\(.*?\)\s*->\s*[^:\n]+:[^\n]*\n(\s*\"\"\"[^\n]*\"\"\"\n)?",
                             f"        if self == DB.Annvq:\n            {line}\n\n            return {name}\n\n",
                             f"def {func}")
    return text


def patch_cli(text: str) -> str:
    """``cli/vectordbbench.py`` importing and adding the ``annvq`` command."""
    if "AnnvqCli" in text:
        return text
    text = _insert_after(text, r"\nfrom \.cli import cli\n",
                         "from ..backend.clients.annvq.cli import Annvq as AnnvqCli\n", "'from .cli import cli'")
    guard = '\nif __name__ == "__main__":'
    add = "cli.add_command(AnnvqCli)\n"
    return text.replace(guard, f"{add}\n{guard}", 1) if guard in text else text + add


def register(package: Path) -> None:
    """Copy and patch into the ``vectordb_bench`` package directory `package`."""
    shutil.copytree(HERE / "annvq", package / "backend" / "clients" / "annvq", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path, patch in ((package / "backend" / "clients" / "__init__.py", patch_clients),
                        (package / "cli" / "vectordbbench.py", patch_cli)):
        path.write_text(patch(path.read_text()))


if __name__ == "__main__":
    import vectordb_bench

    register(Path(vectordb_bench.__file__).resolve().parent)
    print("annvq registered in", Path(vectordb_bench.__file__).resolve().parent)
