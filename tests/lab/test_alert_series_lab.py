"""The series the alert rules are tested on are what the lab's ``wgkill-status --prometheus`` prints.

A fresh capture in each state (healthy, blocking, leaking, probe-leak) equals the
checked-in one (tests/golden/prometheus), the handshake's age aside, and the
rules fire on the fresh capture exactly as on the checked-in one.
"""

import subprocess
from pathlib import Path

from wgkill_lab import alerting
from wgkill_lab.bundles import bundle_root
from wgkill_lab.netns import Lab

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "prometheus"
RULES = ROOT / "contrib" / "prometheus" / "wgkill.rules.yml"


def test_captured_series_match_the_lab_and_the_rules_fire_on_them(lab: Lab, tmp_path: Path) -> None:
    fresh = alerting.capture(lab)
    golden = alerting.load(GOLDEN)
    for state in alerting.STATES:
        assert alerting.comparable(fresh[state]) == alerting.comparable(golden[state]), (
            f"{state}: the lab now prints other series; recapture with "
            "`unshare --net -- python -m wgkill_lab.alerting capture tests/golden/prometheus` and regenerate")
    tests = tmp_path / "fresh.test.yml"
    tests.write_text(alerting.rule_tests(fresh, rules=str(RULES)))
    done = subprocess.run([str(bundle_root("prometheus") / "usr" / "bin" / "promtool"), "test", "rules",
                           str(tests)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def _timer_command(textfile: Path) -> list[str]:
    """wgkill-textfile.service's ExecStart with ${WGKILL_TEXTFILE} set (as /etc/default/wgkill-textfile
    does), its program found on the lab's PATH (this checkout's, not /usr/sbin's)."""
    unit = (ROOT / "hooks" / "wgkill-textfile.service").read_text()
    start = next(ln.removeprefix("ExecStart=") for ln in unit.splitlines() if ln.startswith("ExecStart="))
    return [Path(word).name if i == 0 else word.replace("${WGKILL_TEXTFILE}", str(textfile))
            for i, word in enumerate(start.split())]


def test_the_timers_command_writes_the_textfile_the_rules_read(lab: Lab) -> None:
    """Healthy: exit 0; blocking: exit 1, one of the unit's SuccessExitStatus (a verdict, not a failure of
    the unit); each time the file holds what `wgkill-status --prometheus` prints then."""
    unit = (ROOT / "hooks" / "wgkill-textfile.service").read_text()
    ok_codes = {0, *(int(c) for ln in unit.splitlines() if ln.startswith("SuccessExitStatus=")
                     for c in ln.split("=", 1)[1].split())}
    textfile = lab.tmp / "textfile" / "wgkill.prom"
    textfile.parent.mkdir()
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    for state in ("healthy", "blocking"):
        if state == "blocking":
            lab.kill_daemon(tunnel)
        done = lab.client(*_timer_command(textfile), check=False, timeout=60)
        assert done.returncode == alerting.EXIT_CODES[state] and done.returncode in ok_codes, done.stdout
        written = alerting.normalise(textfile.read_text(), tunnel.iface)
        assert alerting.comparable(written) == alerting.comparable(alerting.load(GOLDEN)[state]), state
