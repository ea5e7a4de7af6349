"""What a hook's process imports is chosen (issue 21): each wgkill-up, wgkill-down and wgkill-status is a
fresh interpreter, so a heavy standard module is paid on every reconnect and every monitoring check."""

import subprocess
import sys

# the modules the three commands import, up front or when their body first needs them
HOOK_PATH = [
    "wgkill.cli.up", "wgkill.cli.down", "wgkill.cli.status", "wgkill.killswitch", "wgkill.release",
    "wgkill.compose", "wgkill.owned", "wgkill.routes", "wgkill.rendercache", "wgkill.firewall.nft",
    "wgkill.firewall.iptables", "wgkill.firewall.libnft", "wgkill.dns.resolvconf", "wgkill.dns.resolved",
    "wgkill.dns.resolvfile", "wgkill.status.gathering", "wgkill.runner", "wgkill.digest",
]
# what each would cost, and what the hook path uses instead
HEAVY = {
    "dataclasses": "wgkill.recordclass",
    "inspect": "wgkill.recordclass",
    "typing": "TYPE_CHECKING = False",
    "subprocess": "runner.run (posix_spawn)",
    "hashlib": "digest.sha256_hex",
    "shutil": "runner.find",
    "tempfile": "fileio",
    "importlib.resources": "templating.template_dir",
    "jinja2": "the render cache (jinja2 only on a miss)",
    "pyroute2": "rtnetlink",
}


def test_the_hook_path_imports_none_of_the_heavy_modules() -> None:
    code = (f"import sys\nfor name in {HOOK_PATH!r}:\n    __import__(name)\n"
            "print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    imported = set(done.stdout.split())
    assert set(HOOK_PATH) <= imported  # the walk saw the path
    assert {name: HEAVY[name] for name in HEAVY if name in imported} == {}
