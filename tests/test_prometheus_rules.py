"""contrib/prometheus/wgkill.rules.yml, checked and tested by promtool on the series the lab captured.

The test file is generated from tests/golden/prometheus/*.prom (``wgkill-status
--prometheus`` in each state, captured by tests/lab/test_alert_series_lab.py,
which also checks that the lab still prints them): it may not drift from them.
promtool comes from Debian's prometheus package, unpacked into the lab's cache
(``make venv`` fetches it; never installed, so no server is started).
"""

import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from wgkill_lab import alerting
from wgkill_lab.bundles import bundle_root

ROOT = Path(__file__).resolve().parents[1]
CONTRIB = ROOT / "contrib" / "prometheus"
GOLDEN = ROOT / "tests" / "golden" / "prometheus"


def promtool(*argv: str) -> subprocess.CompletedProcess[str]:
    binary = bundle_root("prometheus") / "usr" / "bin" / "promtool"
    return subprocess.run([str(binary), *argv], capture_output=True, text=True, cwd=CONTRIB, timeout=120,
                          check=False)


def test_the_promtool_test_file_is_generated_from_the_captured_series() -> None:
    captured = alerting.load(GOLDEN)
    assert (CONTRIB / "wgkill.rules.test.yml").read_text() == alerting.rule_tests(captured), (
        "regenerate: python -m wgkill_lab.alerting tests tests/golden/prometheus "
        "> contrib/prometheus/wgkill.rules.test.yml")


def test_the_captures_are_valid_textfiles_of_each_state() -> None:
    for state, text in alerting.load(GOLDEN).items():
        values = {(s.name, tuple(s.labels.values())): s.value
                  for family in text_string_to_metric_families(text) for s in family.samples}
        assert values[("wgkill_status", ())] == alerting.EXIT_CODES[state], state
        assert values[("wgkill_interface_status", ("wg0",))] == alerting.EXIT_CODES[state], state


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", "wgkill.rules.yml")
    assert done.returncode == 0 and "SUCCESS: 4 rules found" in done.stdout, done.stdout + done.stderr


def test_promtool_test_rules_fire_on_leak_block_and_stale_and_never_when_healthy() -> None:
    done = promtool("test", "rules", "wgkill.rules.test.yml")
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
