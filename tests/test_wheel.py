"""The product's wheel holds the product only: no lab, no demo, and nothing that imports them.

Built for real, the way ``pip install .`` builds it, from a copy of the checkout (with
``lab/`` in it) and from another directory; offline, with the build backend this venv has.
"""

import ast
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Build artefacts and caches, not sources: a fresh clone has none of them.
ARTEFACTS = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                   ".ruff_cache", "dist")
LAB_MODULES = ("lab.py", "labdns.py", "labresolvconf.py", "labserver.py", "routes_lab.py", "demo.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    work = tmp_path_factory.mktemp("wheel")
    source, out = work / "src", work / "dist"
    shutil.copytree(ROOT, source, ignore=ARTEFACTS, symlinks=True)
    assert (source / "lab" / "wgkill_lab" / "netns.py").is_file()  # the lab is there to be left out
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(source)],
                          cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    built = sorted(out.glob("wgkill-*.whl"))
    assert len(built) == 1, [p.name for p in out.iterdir()]
    with zipfile.ZipFile(built[0]) as archive:
        yield archive


def test_wheel_has_no_lab_or_demo_module(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert not [n for n in names if n.startswith("wgkill_lab/")]
    product = [n for n in names if n.startswith("wgkill/")]
    assert not [n for n in product if n.rsplit("/", 1)[-1] in LAB_MODULES]
    assert not [n for n in product if n.rsplit("/", 1)[-1].startswith("lab")]
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert wheel.read(top_level).decode().split() == ["wgkill"]


def test_wheel_code_imports_nothing_from_the_lab(wheel: zipfile.ZipFile) -> None:
    imported: set[str] = set()
    for name in wheel.namelist():
        if name.endswith(".py"):
            for node in ast.walk(ast.parse(wheel.read(name), filename=name)):
                if isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
    assert {"subprocess", "jinja2"} <= imported  # the walk saw the product's imports
    assert not [m for m in imported if m.split(".")[0] == "wgkill_lab"]


def test_wheel_has_the_product_packages_and_templates(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for package in ("wgkill", "wgkill/cli", "wgkill/dns", "wgkill/firewall", "wgkill/templates"):
        assert f"{package}/__init__.py" in names
    # Exactly the checkout's modules: nothing moved away still ships, nothing is missing.
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "wgkill").rglob("*.py")}
    assert {n for n in names if n.endswith(".py") and not n.startswith("wgkill/templates/")} == modules
    templates = sorted(str(p.relative_to(ROOT / "templates")) for p in (ROOT / "templates").rglob("*.j2"))
    assert templates
    assert sorted(n.removeprefix("wgkill/templates/") for n in names
                  if n.startswith("wgkill/templates/") and n.endswith(".j2")) == templates
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "wgkill-up = wgkill.cli.up:main" in wheel.read(entry_points).decode()
