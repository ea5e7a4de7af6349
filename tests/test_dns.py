import base64
import os
import re
import threading
from pathlib import Path

import pytest

from wgkill import dns, hostpins
from wgkill import state as statefile
from wgkill.dns import resolvfile
from wgkill.errors import ConfigError, DnsError, UsageError
from wgkill.records import EndpointRule
from wgkill.wgconf import parse_config

CONFIG = parse_config("[Interface]\nDNS = 192.0.2.129, corp.example, 2001:db8:7::1\n")


def test_plan_from_config_and_flags() -> None:
    plan = dns.plan(CONFIG)
    assert plan.servers == ("192.0.2.129", "2001:db8:7::1") and plan.search == ("corp.example",)
    assert plan.lock and plan.from_config and plan.servers_of(6) == ("2001:db8:7::1",)
    flagged = dns.plan(CONFIG, dns=["198.51.100.53", "198.51.100.53"], domains=["Company.Internal."])
    assert flagged.servers == ("198.51.100.53",) and not flagged.from_config
    assert flagged.domains == ("company.internal",)
    assert not dns.plan(CONFIG, no_lock=True).lock
    assert not dns.plan(None).active and not dns.plan(None).lock
    assert dns.plan(None, dns=["127.0.0.1"]).local_stub


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"dns": ["resolver.example"]}, UsageError),
    ({"domains": ["a..b"]}, UsageError),
    ({"backend": "magic"}, UsageError),
])
def test_plan_refuses_bad_values(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        dns.plan(None, **kwargs)


@pytest.mark.parametrize("entry", ["1.2.3", "127.0.0.1:5300", "[::1]:5300"])
def test_plan_refuses_bad_config_entry(entry: str) -> None:
    """``DNS =`` is read by the one validator wgkill-render uses (``wgconf.dns_address``): an address,
    no port (wg-quick's resolvconf line names none; ``--dns`` takes ADDR:PORT for resolved)."""
    with pytest.raises(ConfigError, match=re.escape(f"DNS = entry {entry!r} is not an IP address")):
        dns.plan(parse_config(f"[Interface]\nDNS = {entry}\n"))


def test_plan_takes_a_port_from_the_dns_flag_only() -> None:
    assert dns.plan(None, dns=["127.0.0.1:5300"]).resolvers == ("127.0.0.1:5300",)


def _plan(*servers: str, lock_file: bool = False) -> dns.DnsPlan:
    return dns.plan(None, dns=list(servers) or ["192.0.2.129"], lock_resolv_conf=lock_file)


def test_file_backend_round_trip_is_byte_exact(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_bytes(b"# dhcp\nnameserver 203.0.113.53\n\toptions edns0  \n")
    path.chmod(0o640)
    record = resolvfile.apply(_plan(), "wg0", path=path)
    assert path.read_text().splitlines()[-1] == "nameserver 192.0.2.129"
    again = resolvfile.apply(_plan(), "wg0", previous=record, path=path)  # re-run
    assert again["original_b64"] == record["original_b64"]
    assert resolvfile.revert(again) == []
    assert path.read_bytes() == b"# dhcp\nnameserver 203.0.113.53\n\toptions edns0  \n"
    assert (path.stat().st_mode & 0o777) == 0o640


def test_symlink_is_put_back_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "stub-resolv.conf"
    target.write_text("nameserver 127.0.0.53\n")
    path = tmp_path / "resolv.conf"
    path.symlink_to(target)
    record = resolvfile.apply(_plan(), "wg0", path=path)
    assert not path.is_symlink() and target.read_text() == "nameserver 127.0.0.53\n"
    resolvfile.revert(record)
    assert path.is_symlink() and os.readlink(path) == str(target)


def test_a_file_rewritten_since_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 203.0.113.53\n")
    record = resolvfile.apply(_plan(), "wg0", path=path)
    path.write_text("nameserver 198.51.100.99\n")  # DHCP renewed meanwhile
    warnings = resolvfile.revert(record)
    assert warnings and "left as it is now" in warnings[0]
    assert path.read_text() == "nameserver 198.51.100.99\n"


def test_hold_puts_ours_back_and_keeps_theirs_as_the_original(tmp_path: Path) -> None:
    """wgkill-guard while the tunnel is up: DHCP rewrote the file; ours goes back, and release
    then restores DHCP's version, not the one from before the tunnel."""
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 203.0.113.53\n")
    record = resolvfile.apply(_plan(), "wg0", path=path)
    ours = path.read_bytes()
    assert resolvfile.hold(record) is None  # still ours: nothing done
    path.write_text("nameserver 198.51.100.99\n")  # DHCP renewed meanwhile
    held = resolvfile.hold(record)
    assert held is not None and path.read_bytes() == ours
    assert dns.hold(held) is None
    assert resolvfile.revert(held) == []
    assert path.read_text() == "nameserver 198.51.100.99\n"


def test_hold_waits_for_a_writer_that_truncated_first(tmp_path: Path) -> None:
    """The guard hears a rewrite the moment the file is truncated: the text the writer puts there
    50 ms later is the original that release restores, never the empty file in between."""
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 203.0.113.53\n")
    record = resolvfile.apply(_plan(), "wg0", path=path)
    with open(path, "wb") as writer:  # open(path, "w"): truncated, nothing written yet
        timer = threading.Timer(0.05, lambda: (writer.write(b"nameserver 198.51.100.99\n"), writer.flush()))
        timer.start()
        held = resolvfile.hold(record)
        timer.join()
    assert held is not None
    path.write_bytes(base64.b64decode(held["written_b64"]))  # ours, as hold put it back before the write
    assert resolvfile.revert(held) == []
    assert path.read_text() == "nameserver 198.51.100.99\n"


def test_hold_leaves_records_without_the_written_text_alone(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 203.0.113.53\n")
    record = resolvfile.apply(_plan(), "wg0", path=path)
    del record["written_b64"]  # written by an earlier wgkill
    path.write_text("nameserver 198.51.100.99\n")
    assert resolvfile.hold(record) is None and path.read_text() == "nameserver 198.51.100.99\n"


def test_missing_file_is_removed_again(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    record = resolvfile.apply(_plan(), "wg0", path=path)
    assert path.exists()
    resolvfile.revert(record)
    assert not path.exists()


def test_preflight_refusals_and_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 203.0.113.53\n")
    warnings = resolvfile.preflight(_plan("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"), path=path)
    assert "glibc reads only the first 3" in warnings[0]
    monkeypatch.setattr(resolvfile, "is_immutable", lambda p: True)
    with pytest.raises(DnsError, match="immutable already"):
        resolvfile.preflight(_plan(), path=path)
    monkeypatch.setattr(resolvfile, "is_immutable", lambda p: False)

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly())
    with pytest.raises(DnsError, match="read-only"):
        resolvfile.preflight(_plan(), path=path)


def test_backend_detection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(dns, "RESOLVED_SOCKET", str(tmp_path / "absent"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert dns.detect_backend() == "file"
    (tmp_path / "resolvconf").write_text("#!/bin/sh\n")
    (tmp_path / "resolvconf").chmod(0o755)
    assert dns.detect_backend() == "resolvconf"
    assert dns.detect_backend("none") == "none"


def test_hosts_pins_only_recorded_names(fs, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = Path("/var/lib/wgkill")
    monkeypatch.setenv("WGKILL_STATE_DIR", str(directory))
    fs.create_file("/etc/hosts", contents="127.0.0.1 localhost\n")
    assert hostpins.pin("wg0") == []  # nothing recorded: a first bring-up resolves normally
    statefile.save(statefile.State(
        interface="wg0", applied_at="t", backend="iptables",
        endpoints=(EndpointRule("198.51.100.2", 51820, "vpn.example.com"),
                   EndpointRule("203.0.113.9", 51820)),
    ), directory)
    assert hostpins.pin("wg0") == ["198.51.100.2 vpn.example.com # wgkill-pin:wg0"]
    hostpins.pin("wg0")  # twice: still one line
    text = Path("/etc/hosts").read_text()
    assert text == "127.0.0.1 localhost\n198.51.100.2 vpn.example.com # wgkill-pin:wg0\n"
    assert hostpins.unpin("wg1") is False
    assert hostpins.unpin("wg0") is True
    assert Path("/etc/hosts").read_text() == "127.0.0.1 localhost\n"
