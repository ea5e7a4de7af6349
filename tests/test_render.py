"""wgkill-render, new configs and snippets: golden files, validation, and wg-quick's own parser.

Regenerate the golden files after an intended change with WGKILL_UPDATE_GOLDEN=1
and review the diff. Keys here are throwaway test keys made with `wg genkey`.
"""

import subprocess
import sys
from pathlib import Path

import goldenfiles
import pytest

from wgkill import render, wgconf
from wgkill.errors import ConfigError, UsageError
from wgkill.render import Request

GOLDEN = goldenfiles.ROOT / "render"
BIN = Path(sys.executable).parent
CLIENT_KEY = "mIwk85HypEYTXOiBzqbQhRNOEyWNG0wEMN6IjljB9nk="
CLIENT_PUB = "pI2UKjQaC31CTaTD8lJE3fdTEFglmRof/ZX14y88piA="
SERVER_PUB = "rIncF/NfKymcZ2qEtcVVNJh2ElkAbzMaXs2zXo0S7RM="
PSK = "mH/jNnHyF2s/IV6F+NCHMe5iKWt3qFM1tu75ZEHHNlw="
WG_SETCONF_KEYS = {"privatekey", "listenport", "fwmark", "publickey", "presharedkey", "endpoint",
                   "allowedips", "persistentkeepalive"}


check_golden = goldenfiles.checker("render")


def wg_quick_strip(tmp_path: Path, text: str, iface: str = "wgr0") -> str:
    """What wg-quick hands to `wg setconf`: it must accept the file and keep only wg keys."""
    conf = tmp_path / f"{iface}.conf"
    conf.write_bytes(text.encode())
    conf.chmod(0o600)
    done = subprocess.run(["wg-quick", "strip", str(conf)], capture_output=True, text=True, check=False,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_wg_keys_only(stripped: str) -> None:
    for line in stripped.splitlines():
        code = line.split("#", 1)[0].strip()
        if code and not code.startswith("["):
            assert code.split("=", 1)[0].strip().lower() in WG_SETCONF_KEYS, line


def _fake_resolve(host: str, port: int) -> str:
    assert host == "vpn.example.com" and port == 51820
    return "198.51.100.7"


def _fake_genkey() -> tuple[str, str]:
    return CLIENT_KEY, CLIENT_PUB


def _psk_file(tmp_path: Path) -> str:
    path = tmp_path / "psk"
    path.write_text(PSK + "\n")
    return str(path)


def _base(**kw: object) -> Request:
    fields: dict[str, object] = {
        "private_key": CLIENT_KEY, "addresses": ["10.0.0.2/32", "fd00:a::2/128"],
        "public_key": SERVER_PUB, "endpoint": "198.51.100.2:51820",
    }
    fields.update(kw)
    return Request(**fields)  # type: ignore[arg-type]


NEW_CASES = {
    "new-full-tunnel.conf": lambda tmp: _base(),
    "new-everything.conf": lambda tmp: _base(
        dns=["10.64.0.1", "fd00:a::1, corp.example"], mtu="1380", preshared_key_file=_psk_file(tmp),
        persistent_keepalive="25", allow_lan=True, dns_domains=["corp.example", "lab.corp.example"],
        no_dns_lock=True, config="/etc/wire guard/wg0.conf"),
    "new-split-ipv6-endpoint.conf": lambda tmp: _base(
        endpoint="[2001:db8:d::2]:51820", split=["10.0.0.0/8,192.168.1.0/24", "fd00::/8"]),
    "new-allowed-ips.conf": lambda tmp: _base(allowed_ips=["0.0.0.0/1, 128.0.0.0/1", "::/1", "8000::/1"]),
    "new-pinned.conf": lambda tmp: _base(endpoint="vpn.example.com:51820", pin_endpoint=True),
    "new-hostname.conf": lambda tmp: _base(endpoint="vpn.example.com:51820"),
    "new-genkey.conf": lambda tmp: _base(private_key=None, genkey=True),
}


@pytest.mark.parametrize("name", sorted(NEW_CASES))
def test_new_config_golden_and_accepted_by_wg_quick(name: str, tmp_path: Path) -> None:
    result = render.build(NEW_CASES[name](tmp_path), "/usr/bin", resolve=_fake_resolve, genkey=_fake_genkey)
    check_golden(name, result.text)
    assert result.private
    assert_wg_keys_only(wg_quick_strip(tmp_path, result.text))
    assert result.text.count("\nPostUp = wgkill-up %i") == 1 and result.text.count("\nPreDown = ") == 1


def test_new_config_warnings_and_public_key(tmp_path: Path) -> None:
    hostname = render.build(NEW_CASES["new-hostname.conf"](tmp_path), "/usr/bin")
    assert len(hostname.warnings) == 1 and "vpn.example.com:51820 is a hostname" in hostname.warnings[0]
    pinned = render.build(NEW_CASES["new-pinned.conf"](tmp_path), "/usr/bin", resolve=_fake_resolve)
    assert pinned.warnings == ()
    generated = render.build(NEW_CASES["new-genkey.conf"](tmp_path), "/usr/bin", genkey=_fake_genkey)
    assert generated.public_key == CLIENT_PUB
    inside = render.build(_base(split=["198.51.100.0/24"]), "/usr/bin")
    assert inside.warnings == ("--endpoint 198.51.100.2:51820 is inside --split 198.51.100.0/24: its "
                               "packets would be routed into the tunnel itself",)


def test_genkey_uses_wg_and_prints_the_matching_public_key() -> None:
    done = subprocess.run([str(BIN / "wgkill-render"), "--genkey", "--address", "10.0.0.2/32",
                           "--public-key", SERVER_PUB, "--endpoint", "198.51.100.2:51820"],
                          capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 0, done.stderr
    (private,) = [ln.split(" = ", 1)[1] for ln in done.stdout.splitlines() if ln.startswith("PrivateKey")]
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True,
                            check=True).stdout.strip()
    assert done.stderr == f"wgkill-render: public key: {public}\n"


def test_hook_arguments_survive_wg_quick_eval(tmp_path: Path) -> None:
    """wg-quick substitutes %i and evals the hook in bash: every argument must arrive intact."""
    hostile = "/tmp/x y/$(touch pwned)`id`;'\"wg0.conf"
    result = render.build(_base(config=hostile, allow_lan=True, dns_domains=["corp.example"]), "/usr/bin")
    (hook,) = [ln.split("=", 1)[1].strip() for ln in result.text.splitlines() if ln.startswith("PostUp")]
    script = ('wgkill-up() { printf "%s\\n" "$@"; }; hook="$1"; hook="${hook//%i/wg0}"; (eval "$hook")')
    done = subprocess.run(["bash", "-c", script, "bash", hook], capture_output=True, text=True, check=True,
                          cwd=tmp_path)
    assert done.stdout.splitlines() == ["wg0", "--allow-lan", "--dns-domain", "corp.example",
                                        "--config", hostile]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "request_"), [
    ("hooks-only.conf", Request()),
    ("hooks-only-options.conf", Request(allow_lan=True, dns_domains=["corp.example"], no_dns_lock=True,
                                        config="/etc/wireguard/wg0.conf")),
])
def test_hook_lines_alone(name: str, request_: Request) -> None:
    """No new-config flag: only the block to paste into an [Interface] section."""
    result = render.build(request_, "/usr/bin")
    check_golden(name, result.text)
    assert result.text.startswith("# wgkill: ") and not result.private


def test_pin_endpoint_alone_is_refused() -> None:
    with pytest.raises(UsageError, match="--pin-endpoint needs --endpoint or --from"):
        render.build(Request(pin_endpoint=True), "/usr/bin")


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("private_key", "not-a-key", "--private-key"),
    ("private_key", CLIENT_KEY[:-2] + "l=", "--private-key"),  # non-canonical base64
    ("public_key", "AAAA", "--public-key"),
    ("public_key", CLIENT_KEY + "AAAA", "--public-key"),
    ("addresses", ["10.0.0.256/32"], "--address"),
    ("addresses", ["10.0.0.2/33"], "--address"),
    ("addresses", ["fe80::1%eth0"], "--address"),
    ("addresses", ["10.0.0.2/32,"], "--address"),
    ("dns", ["1.2.3"], "--dns"),
    ("dns", ["bad_domain!"], "--dns"),
    ("dns", ["-corp.example"], "--dns"),
    ("endpoint", "198.51.100.2:65536", "--endpoint"),
    ("endpoint", "[2001:db8::1:51820", "--endpoint"),
    ("endpoint", "[2001:db8::1]51820", "--endpoint"),
    ("endpoint", "vpn.example.com:no-such-service", "--endpoint"),
    ("endpoint", "vpn.example.com", "--endpoint"),
    ("endpoint", "vpn..example.com:51820", "--endpoint"),
    ("allowed_ips", ["0.0.0.0/0, 10.0.0.0/40"], "--allowed-ips"),
    ("split", ["not-a-cidr"], "--split"),
    ("persistent_keepalive", "-1", "--persistent-keepalive"),
    ("persistent_keepalive", "65536", "--persistent-keepalive"),
    ("mtu", "67", "--mtu"),
    ("mtu", "1000", "--mtu"),  # below IPv6's minimum with an IPv6 address
    ("dns_domains", ["corp#x"], "--dns-domain"),
    ("dns_domains", ["1.2.3.4"], "--dns-domain"),
    ("config", "/etc/wg#0.conf", "--config"),
    ("config", "/etc/%i.conf", "--config"),
    ("config", "/etc/wg0\n.conf", "--config"),
])
def test_invalid_values_name_the_flag(field: str, value: object, flag: str) -> None:
    with pytest.raises(UsageError) as caught:
        render.build(_base(**{field: value}), "/usr/bin", genkey=_fake_genkey)
    message = str(caught.value)
    assert message.startswith(f"invalid {flag} ") and "\n" not in message
    if field == "private_key":
        assert "not shown" in message and str(value) not in message


@pytest.mark.parametrize(("kw", "says"), [
    ({"private_key": None}, "exactly one of --private-key"),
    ({"genkey": True}, "(got --private-key, --genkey)"),
    ({"addresses": []}, "needs --address"),
    ({"public_key": None}, "needs --public-key"),
    ({"endpoint": None}, "needs --endpoint"),
    ({"split": ["10.0.0.0/8"], "allowed_ips": ["10.0.0.0/8"]}, "--split, --split-file and --allowed-ips"),
    ({"interface": "wg0"}, "--interface only names"),
    ({"in_place": True}, "--in-place needs --from"),
])
def test_inconsistent_requests(kw: dict[str, object], says: str) -> None:
    with pytest.raises(UsageError, match=None) as caught:
        render.build(_base(**kw), "/usr/bin", genkey=_fake_genkey)
    assert says in str(caught.value)


def test_unreadable_and_invalid_key_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read --private-key-file '.*missing': No such file"):
        render.build(_base(private_key=None, private_key_file=str(tmp_path / "missing")), "/usr/bin")
    bad = tmp_path / "bad"
    bad.write_text("hunter2\n")
    with pytest.raises(UsageError, match=r"invalid --preshared-key-file \(value not shown"):
        render.build(_base(preshared_key_file=str(bad)), "/usr/bin")
    good = tmp_path / "key"
    good.write_text(CLIENT_KEY + "\n")
    result = render.build(_base(private_key=None, private_key_file=str(good)), "/usr/bin")
    assert f"PrivateKey = {CLIENT_KEY}\n" in result.text


def test_validators_accept_what_wg_quick_accepts() -> None:
    assert render.address("10.0.0.2") == "10.0.0.2"
    assert render.cidr("10.0.0.1/8") == "10.0.0.1/8"  # host bits: wg masks them
    assert render.cidr("::0/0") == "::0/0"
    assert render.dns_entry("fd00::1") == "fd00::1"
    assert render.dns_entry("corp.example.") == "corp.example."
    assert render.endpoint("[2001:db8::1]:51820").host == "2001:db8::1"
    assert render.endpoint("vpn-1.example.com:443").port == 443
    assert render.keepalive("off") == 0
    assert render.mtu("1280") == 1280


def test_resolver_failure_is_one_line() -> None:
    def refuse(host: str, port: int) -> str:
        raise ConfigError(f"cannot resolve endpoint {host} for --pin-endpoint: Name or service not known")

    with pytest.raises(ConfigError, match=r"cannot resolve endpoint vpn\.example\.com"):
        render.build(_base(endpoint="vpn.example.com:51820", pin_endpoint=True), "/usr/bin", resolve=refuse)


def test_real_resolver_pins_localhost() -> None:
    """getaddrinfo on a name /etc/hosts answers: no query leaves the machine."""
    assert render.resolve_endpoint("localhost", 51820) in {"127.0.0.1", "::1"}


# ---- snippets --------------------------------------------------------------------------------

SNIPPET_CASES = {
    "snippet-resolved.conf": (Request(snippet="resolved", dns=["1.1.1.1", "1.0.0.1"]), "/usr/bin"),
    "snippet-dnscrypt.toml": (Request(snippet="dnscrypt", dns=["10.64.0.1", "fd00:a::1"]), "/usr/bin"),
    "snippet-dnscrypt-default.toml": (Request(snippet="dnscrypt"), "/usr/bin"),
    "snippet-systemd.conf": (Request(snippet="systemd", interface="wg1"), "/opt/wgkill/bin"),
    "snippet-systemd-on-path.conf": (Request(snippet="systemd"), "/usr/local/bin"),
}


@pytest.mark.parametrize("name", sorted(SNIPPET_CASES))
def test_snippet_golden(name: str) -> None:
    request, bin_dir = SNIPPET_CASES[name]
    result = render.build(request, bin_dir)
    check_golden(name, result.text)
    assert not result.private and result.warnings == ()


def test_snippet_dns_from_config(tmp_path: Path) -> None:
    source = Path(__file__).parent / "samples" / "airvpn.conf"
    result = render.build(Request(snippet="resolved", source=str(source)), "/usr/bin")
    assert "DNS=10.128.0.1 fd7d:76ee:e68f:a993::1\n" in result.text
    systemd = render.build(Request(snippet="systemd", source="/etc/wireguard/wg7.conf"), "/opt/x/bin")
    assert "systemctl enable --now wg-quick@wg7\n" in systemd.text


@pytest.mark.parametrize(("request_", "says"), [
    (Request(snippet="resolved"), "--snippet resolved needs DNS server addresses"),
    (Request(snippet="resolved", dns=["corp.example"]), "--snippet resolved needs DNS server addresses"),
    (Request(snippet="systemd", allow_lan=True), "--allow-lan cannot be used with --snippet"),
    (Request(snippet="systemd", addresses=["10.0.0.2"]), "--address cannot be used with --snippet"),
    (Request(snippet="systemd", interface="wg0;reboot"), "invalid interface name"),
    (Request(snippet="nope"), "invalid --snippet 'nope'"),
])
def test_snippet_refusals(request_: Request, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        render.build(request_, "/usr/bin")
    assert says in str(caught.value)


# ---- the console script ------------------------------------------------------------------------

def _cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "wgkill-render"), *argv], capture_output=True, text=True, check=False,
                          timeout=30, cwd=cwd, env={"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
                                                    "LC_ALL": "C"})


@pytest.mark.parametrize("argv", [
    ["--private-key", CLIENT_KEY, "--address", "10.0.0.2/32", "--public-key", "AAAA",
     "--endpoint", "198.51.100.2:51820"],
    ["--genkey", "--address", "10.0.0.2/32", "--public-key", SERVER_PUB, "--endpoint", "198.51.100.2:99999"],
    ["--genkey", "--address", "300.0.0.2/32", "--public-key", SERVER_PUB, "--endpoint", "198.51.100.2:1"],
    ["--from", "/nonexistent/wg0.conf"],
    ["--snippet", "dnscrypt", "--dns", "not a server"],
    ["--bogus"],
])
def test_cli_errors_are_one_line_exit_code_and_empty_stdout(argv: list[str]) -> None:
    done = _cli(*argv)
    assert done.returncode in (2, 3), done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wgkill-render: error: "), done.stderr
    assert "Traceback" not in done.stderr


def test_cli_prints_config_and_writes_output(tmp_path: Path) -> None:
    argv = ["--private-key", CLIENT_KEY, "--address", "10.0.0.2/32", "--address", "fd00:a::2/128",
            "--public-key", SERVER_PUB, "--endpoint", "198.51.100.2:51820"]
    printed = _cli(*argv)
    assert printed.returncode == 0 and printed.stderr == ""
    assert printed.stdout == (GOLDEN / "new-full-tunnel.conf").read_text()
    target = tmp_path / "wg0.conf"
    written = _cli(*argv, "--output", str(target))
    assert written.returncode == 0 and written.stdout == ""
    assert target.read_text() == printed.stdout
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["wg0.conf"]  # no temp file left behind


def test_cli_help_documents_truncation() -> None:
    done = _cli("--help")
    assert done.returncode == 0
    assert "the shell empties wg0.conf before wgkill-render" in " ".join(done.stdout.split())


def test_pasted_hook_block_is_read_by_wg_quick_as_its_own_hooks(tmp_path: Path) -> None:
    """The block printed for pasting holds only wg-quick's hook keys and comments: wg gets none of it."""
    done = _cli("--allow-lan", "--config", "/etc/wireguard/my vpn.conf")
    assert done.returncode == 0 and done.stderr == ""
    bare = (f"[Interface]\nPrivateKey = {CLIENT_KEY}\n\n"
            f"[Peer]\nPublicKey = {SERVER_PUB}\nAllowedIPs = 0.0.0.0/0\n")
    pasted = bare.replace("\n\n", "\n" + done.stdout + "\n", 1)

    def code(stripped: str) -> list[str]:
        return [line for line in stripped.splitlines() if line.split("#", 1)[0].strip()]

    assert code(wg_quick_strip(tmp_path, pasted)) == code(wg_quick_strip(tmp_path, bare))
    hooks = {ln.key: ln.value for ln in wgconf.read_lines(pasted) if ln.key in ("postup", "predown")}
    assert hooks == {"postup": "wgkill-up %i --allow-lan --config '/etc/wireguard/my vpn.conf'",
                     "predown": "wgkill-down %i"}
