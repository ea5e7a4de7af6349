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
    timers = {t.stem for t in (ROOT / "hooks").glob("*.timer")}
    for unit in units:
        text = unit.read_text()
        starts = re.findall(r"^ExecStart=(\S+)", text, re.MULTILINE)
        assert starts and all(s.startswith("/usr/sbin/") and s.removeprefix("/usr/sbin/") in names
                              for s in starts), (unit.name, starts)
        assert re.search(r"^Documentation=man:wgkill-\S+\(8\)$", text, re.MULTILINE)
        if unit.stem not in timers:  # enabled by the package and make install; a timer's is run by it
            assert re.search(r"^WantedBy=\S+", text, re.MULTILINE), unit.name


def test_the_textfile_timer_runs_wgkill_status_every_15_to_30_seconds_into_a_textfile() -> None:
    timer = (ROOT / "hooks" / "wgkill-textfile.timer").read_text()
    every = re.search(r"^OnUnitActiveSec=(\d+)s$", timer, re.MULTILINE)
    assert every and 15 <= int(every.group(1)) <= 30, every
    assert re.search(r"^WantedBy=timers.target$", timer, re.MULTILINE)  # what enabling it means
    service = (ROOT / "hooks" / "wgkill-textfile.service").read_text()
    assert "ExecStart=/usr/sbin/wgkill-status --prometheus-file ${WGKILL_TEXTFILE}\n" in service
    assert "[Install]" not in service  # only the timer starts it
    assert "SuccessExitStatus=1 2\n" in service  # WARNING and CRITICAL are verdicts, not failures


def test_timers_ship_disabled_and_services_enabled() -> None:
    """debian/rules and hooks/install.sh enable the boot and guard units, never a timer."""
    rules = (ROOT / "debian" / "rules").read_text()
    enabled = re.search(r"dh_installsystemd --no-start --no-stop-on-upgrade (.+)", rules)
    disabled = re.search(r"dh_installsystemd --no-enable --no-start (.+)", rules)
    assert enabled and disabled
    services = {u.name for u in (ROOT / "hooks").glob("*.service")}
    timers = {u.name for u in (ROOT / "hooks").glob("*.timer")}
    assert set(enabled.group(1).split()) | set(disabled.group(1).split()) == services | timers
    assert timers <= set(disabled.group(1).split())
    assert "*.timer lib/systemd/system" in (ROOT / "debian" / "wgkill.install").read_text()
