"""What the packaging files promise, checked against the code they package (no build needed)."""

import re
from pathlib import Path

import wgkill
from wgkill.cli import manpage

ROOT = Path(__file__).resolve().parents[1]


def test_debian_changelog_carries_the_package_version() -> None:
    first = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
    assert re.match(rf"^wgkill \({re.escape(wgkill.__version__)}\) ", first), first


def test_every_unit_starts_an_installed_command_from_usr_sbin() -> None:
    """The units ship as the package installs them; make install rewrites only this prefix."""
    names = {c.name for c in manpage.commands()}
    units = sorted((ROOT / "hooks").glob("*.service"))
    assert units
    for unit in units:
        text = unit.read_text()
        starts = re.findall(r"^ExecStart=(\S+)", text, re.MULTILINE)
        assert starts and all(s.startswith("/usr/sbin/") and s.removeprefix("/usr/sbin/") in names
                              for s in starts), (unit.name, starts)
        assert re.search(r"^Documentation=man:wgkill-\S+\(8\)$", text, re.MULTILINE)
        assert re.search(r"^WantedBy=\S+", text, re.MULTILINE)  # enabled by the package and make install
