"""The manual pages say what ``--help`` says: every option, metavar and choice, rendered by man(1)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wgkill.cli import manpage

BIN = Path(sys.executable).parent
COMMANDS = manpage.commands()
NAMES = [c.name for c in COMMANDS]
OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


def _help(name: str) -> str:
    done = subprocess.run([str(BIN / name), "--help"], capture_output=True, text=True, check=False,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def _man(page: Path) -> subprocess.CompletedProcess[str]:
    """``man -l`` as a user's terminal would show it (ASCII, no pager, no hyphenation)."""
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "MANWIDTH": "200", "HOME": str(page.parent)}
    return subprocess.run(["man", "--warnings", "--no-hyphenation", "--no-justification", "-P", "cat",
                           "-l", str(page)], capture_output=True, text=True, check=False, timeout=60, env=env)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    written = manpage.write_all(tmp_path_factory.mktemp("man8"))
    return {p.name.removesuffix(".8"): p for p in written}


def test_one_page_per_console_script(pages: dict[str, Path]) -> None:
    assert {"wgkill-up", "wgkill-down", "wgkill-status", "wgkill-render", "wgkill-pin", "wgkill-release",
            "wgkill-boot"} <= set(NAMES)
    assert sorted(pages) == sorted(NAMES)
    assert all((BIN / name).exists() for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_page_lists_every_option_help_shows(pages: dict[str, Path], name: str) -> None:
    shown = _man(pages[name])
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""  # man --warnings: groff found nothing to complain about
    text = shown.stdout
    helped = _help(name)
    options = set(OPTION.findall(helped))
    assert {"-h", "--help"} <= options
    missing = sorted(o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text))
    assert missing == [], f"{name}(8) lacks {missing}"
    usage = " ".join(helped.split("\n\n")[0].split()).removeprefix("usage: ")
    synopsis = " ".join(text.split("SYNOPSIS", 1)[1].split("DESCRIPTION", 1)[0].split())
    assert synopsis == usage  # the same options, metavars and choices, in the same order
    flowed = " ".join(text.split())
    for chunk in re.split(r" {2,}|\n", helped):  # every piece of prose --help prints, word for word
        piece = " ".join(chunk.split())
        if piece and not piece.startswith(("usage:", "-")) and not piece.endswith(":"):
            assert piece in flowed, f"{name}(8) lacks {piece!r}"


@pytest.mark.parametrize("name", NAMES)
def test_page_has_the_sections_of_a_manual_page(pages: dict[str, Path], name: str) -> None:
    text = _man(pages[name]).stdout
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.MULTILINE), section
    assert text.splitlines()[0].startswith(f"{name.upper()}(8)")
    others = [n for n in NAMES if n != name]
    assert all(f"{n}(8)" in text for n in others)


def test_exit_status_follows_the_error_classes(pages: dict[str, Path]) -> None:
    from wgkill import errors

    text = " ".join(_man(pages["wgkill-up"]).stdout.split())
    for cls in (errors.UsageError, errors.ConfigError, errors.StateError, errors.FirewallError):
        assert f"{cls.exit_code} {(cls.__doc__ or '').strip()}" in text
    status = " ".join(_man(pages["wgkill-status"]).stdout.split())
    assert "0 OK:" in status and "3 UNKNOWN:" in status


def test_date_comes_from_source_date_epoch(tmp_path: Path) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    done = subprocess.run([sys.executable, "-m", "wgkill.cli.manpage", str(tmp_path)], capture_output=True,
                          text=True, check=False, env=env, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(str(tmp_path / f"{n}.8") for n in NAMES)
    first = (tmp_path / "wgkill-up.8").read_text().splitlines()[0]
    assert first.startswith('.TH "WGKILL-UP" "8" "2023-11-14"')
