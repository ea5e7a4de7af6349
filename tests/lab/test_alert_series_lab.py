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
