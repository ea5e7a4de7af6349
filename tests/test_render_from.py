"""wgkill-render --from: only hook lines change, on every real-world-shaped sample.

Each sample's expected result is built independently (its lines, minus the
hook lines named here, plus wgkill's block at the position named here) and
must equal the output exactly; the output is also a golden file, is stable
when upgraded again, and gives `wg-quick strip` exactly what the original did.
"""

import subprocess
from pathlib import Path

import goldenfiles
import pytest

from wgkill import confedit, render
from wgkill.errors import ConfigError, UsageError
from wgkill.render import HookOptions, Request

SAMPLES = Path(__file__).parent / "samples"

# sample -> (1-based line numbers that must go, number of original lines kept before the block)
EXPECTED = {
    "airvpn.conf": ([], 5),
    "article.conf": ([7, 8, 11, 12], 6),
    "handwritten-variants.conf": ([5, 6, 7, 8], 4),
    "mullvad-killswitch.conf": ([6, 7], 5),
    "mullvad.conf": ([], 5),
    "multi-peer.conf": ([], 14),
    "no-peer-no-newline.conf": ([], 3),
    "proton.conf": ([], 10),
    "upgraded-before.conf": ([5, 6, 7, 8, 9], 4),
    "windows-crlf.conf": ([], 3),
}
HOSTNAMES = {"airvpn.conf": ["10: Endpoint europe3.vpn.example.net:1637"],
             "article.conf": ["16: Endpoint vpn.example.com:51820"],
             "multi-peer.conf": ["33: Endpoint gw2.corp.example:443"]}


def test_every_sample_has_an_expectation() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.conf")) == sorted(EXPECTED)


_check_golden = goldenfiles.checker("render")


def _expected(sample: str, block: str) -> str:
    text = (SAMPLES / sample).read_bytes().decode()
    newline = "\r\n" if "\r\n" in text else "\n"
    if not text.endswith("\n"):
        text += newline  # the one byte --from may add: a newline before the block it appends
    lines = text.splitlines(keepends=True)
    gone, before = EXPECTED[sample]
    kept_before = [ln for n, ln in enumerate(lines[:before], 1) if n not in gone]
    kept_after = [ln for n, ln in enumerate(lines[before:], before + 1) if n not in gone]
    return "".join(kept_before) + block.replace("\n", newline) + "".join(kept_after)


def _strip(tmp_path: Path, text: str) -> list[str]:
    """What wg-quick hands to `wg setconf`, less comments (which wg ignores) and blank lines."""
    conf = tmp_path / "wgr0.conf"
    conf.write_bytes(text.encode())
    conf.chmod(0o600)
    done = subprocess.run(["wg-quick", "strip", str(conf)], capture_output=True, text=True, check=False,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    code = [line.split("#", 1)[0].strip() for line in done.stdout.splitlines()]
    return [line for line in code if line]


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_from_changes_only_hook_lines(sample: str, tmp_path: Path) -> None:
    source = SAMPLES / sample
    result = render.build(Request(source=str(source)), "/usr/bin")
    block = render.hook_block(HookOptions())
    assert result.text == _expected(sample, block)
    _check_golden(f"from-{sample}", result.text)
    assert result.private and result.source == str(source)
    hostnames = [w for w in result.warnings if "is a hostname" in w]
    assert [w.split(":", 1)[1].split(" is a")[0] for w in hostnames] == HOSTNAMES.get(sample, [])

    again = render.build(Request(source=str(_write(tmp_path, "again.conf", result.text))), "/usr/bin")
    assert again.text == result.text  # idempotent: the block is found and replaced by itself
    assert _strip(tmp_path, result.text) == _strip(tmp_path, source.read_bytes().decode())


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_from_with_options_replaces_the_options(tmp_path: Path) -> None:
    request = Request(source=str(SAMPLES / "upgraded-before.conf"), allow_lan=True,
                      dns_domains=["corp.example"], no_dns_lock=True)
    result = render.build(request, "/usr/bin")
    block = render.hook_block(HookOptions(allow_lan=True, dns_domains=("corp.example",), dns_lock=False))
    assert result.text == _expected("upgraded-before.conf", block)
    _check_golden("from-upgraded-before-options.conf", result.text)
    tail = "the new hook lines carry only the options given on this command line"
    assert result.warnings == (
        f"{request.source}:8: replaced `PostUp = wgkill-up %i --config /etc/wireguard/old.conf`: {tail}",
        f"{request.source}:9: replaced `PreDown = /usr/local/bin/wgkill-down %i`: {tail}",
    )
    plain = render.build(Request(source=str(_write(tmp_path, "wg0.conf", result.text))), "/usr/bin")
    assert "PostUp = wgkill-up %i\n" in plain.text and "--allow-lan" not in plain.text.split("# --")[0]


def test_pin_endpoint_rewrites_only_hostname_endpoints(tmp_path: Path) -> None:
    answers = {("gw2.corp.example", 443): "2001:db8:77::1"}
    result = render.build(Request(source=str(SAMPLES / "multi-peer.conf"), pin_endpoint=True), "/usr/bin",
                          resolve=lambda host, port: answers[(host, port)])
    _check_golden("from-multi-peer-pinned.conf", result.text)
    unpinned = render.build(Request(source=str(SAMPLES / "multi-peer.conf")), "/usr/bin").text
    assert result.text == unpinned.replace(
        "Endpoint = gw2.corp.example:443\n",
        "# Endpoint pinned by wgkill-render; it was gw2.corp.example:443\nEndpoint = [2001:db8:77::1]:443\n")
    assert result.warnings == ()
    stripped = _strip(tmp_path, result.text)
    assert "Endpoint = [2001:db8:77::1]:443" in stripped
    assert "Endpoint = gw2.corp.example:443" not in stripped


def test_pin_keeps_key_spelling_spacing_comment_and_crlf(tmp_path: Path) -> None:
    text = ("[Interface]\r\nPrivateKey = mIwk85HypEYTXOiBzqbQhRNOEyWNG0wEMN6IjljB9nk=\r\n\r\n[Peer]\r\n"
            "PublicKey = rIncF/NfKymcZ2qEtcVVNJh2ElkAbzMaXs2zXo0S7RM=\r\n"
            "  endpoint=localhost:51820   # the box under the desk\r\nAllowedIPs = 10.0.0.0/8\r\n")
    result = render.build(Request(source=str(_write(tmp_path, "wg0.conf", text)), pin_endpoint=True),
                          "/usr/bin")  # the real getaddrinfo: localhost is answered from /etc/hosts
    pinned = [ln for ln in result.text.split("\r\n") if "endpoint=" in ln]
    assert pinned in (["  endpoint=127.0.0.1:51820   # the box under the desk"],
                      ["  endpoint=[::1]:51820   # the box under the desk"])
    assert "  # Endpoint pinned by wgkill-render; it was localhost:51820\r\n" in result.text
    assert "\n" not in result.text.replace("\r\n", "")


@pytest.mark.parametrize(("text", "says"), [
    ("", "no [Interface] section (the file is empty"),
    ("[Peer]\nPublicKey = rIncF/NfKymcZ2qEtcVVNJh2ElkAbzMaXs2zXo0S7RM=\n", "no [Interface] section"),
    ("[Interface]\nPrivateKey = nope\n", ":2: invalid privatekey (value not shown"),
    ("[Interface]\nAddress = 10.0.0.1/40\n", ":2: invalid address '10.0.0.1/40'"),
    ("[Interface]\nDNS = 1.1.1\n", ":2: invalid dns '1.1.1'"),
    ("[Interface]\nSaveConfig = yes\n", ":2: invalid saveconfig 'yes': SaveConfig must be true or false"),
    ("[Interface]\n[Wat]\nKey = 1\n", ":2: unknown section '[Wat]'"),
    ("[Interface]\n\n[Peer]\nEndpoint = [10.0.0.1:5\n"
     "PublicKey = rIncF/NfKymcZ2qEtcVVNJh2ElkAbzMaXs2zXo0S7RM=\n",
     ":4: invalid endpoint '[10.0.0.1:5'"),
    ("[Interface]\n\n[Peer]\nAllowedIPs = 0.0.0.0/0, bad\n"
     "PublicKey = rIncF/NfKymcZ2qEtcVVNJh2ElkAbzMaXs2zXo0S7RM=\n",
     ":4: invalid allowedips 'bad'"),
    ("[Interface]\nPostUp = iptables -I OUTPUT ! -o %i -j REJECT; resolvectl dns %i 10.0.0.1\n",
     ":2: this PostUp line mixes a kill-switch rule with other commands"),
])
def test_from_refuses_broken_configs(text: str, says: str, tmp_path: Path) -> None:
    path = _write(tmp_path, "wg0.conf", text)
    with pytest.raises(ConfigError) as caught:
        render.build(Request(source=str(path)), "/usr/bin")
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("kw", "flag"), [
    ({"addresses": ["10.0.0.2"]}, "--address"), ({"genkey": True}, "--genkey"),
    ({"dns": ["1.1.1.1"]}, "--dns"),
    ({"split": ["10.0.0.0/8"]}, "--split"),
])
def test_from_refuses_new_config_flags(kw: dict[str, object], flag: str) -> None:
    with pytest.raises(UsageError, match=f"^{flag} cannot be used with --from"):
        render.build(Request(source=str(SAMPLES / "mullvad.conf"), **kw), "/usr/bin")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "kind"), [
    ("wgkill-up %i", "replace"),
    ("/opt/wgkill/bin/wgkill-down %i", "replace"),
    ("iptables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -m addrtype ! --dst-type LOCAL "
     "-j REJECT && ip6tables -I OUTPUT ! -o %i -j REJECT", "replace"),
    ("iptables-nft -w -A OUTPUT ! --out-interface wg0 -j DROP", "replace"),
    ("iptables -I OUTPUT -o %i -j REJECT", None),  # not negated: not a kill switch
    ("iptables -I INPUT ! -i %i -j DROP", None),
    ("iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE", None),
    ("iptables -I OUTPUT ! -o %i -j ACCEPT", None),
    ("resolvectl dns %i 10.0.0.1", None),
    ("wgkill-up %i && echo up", "mixed"),
    ("echo 'unbalanced", None),
])
def test_hook_classification(value: str, kind: str | None) -> None:
    assert confedit.classify_hook(value) == kind


def test_hook_lines_outside_interface_are_left_alone(tmp_path: Path) -> None:
    text = ("[Interface]\nPrivateKey = mIwk85HypEYTXOiBzqbQhRNOEyWNG0wEMN6IjljB9nk=\n\n[Peer]\n"
            "PublicKey = rIncF/NfKymcZ2qEtcVVNJh2ElkAbzMaXs2zXo0S7RM=\n# PostUp = wgkill-up %i\n"
            "AllowedIPs = 10.0.0.0/8\n")
    result = render.build(Request(source=str(_write(tmp_path, "wg0.conf", text))), "/usr/bin")
    lines = text.splitlines(keepends=True)
    assert result.text == "".join(lines[:2]) + render.hook_block(HookOptions()) + "".join(lines[2:])
