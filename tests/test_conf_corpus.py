"""Real-world configs (tests/samples/corpus, see SOURCES.md) read as wg-quick and `wg` read them.

Every valid one is upgraded by the console script keeping every byte it does
not own; every invalid one is refused with one line and exit code 3. Then
seeded random inputs (bytes, characters, mutated corpus files) show that
`--from` and `parse_config` never fail any other way, and that no value
written into a hook line can break the next `--from`.
"""

import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from wgkill import render, wgconf
from wgkill.errors import ConfigError, UsageError
from wgkill.render import HookOptions, Request

CORPUS = Path(__file__).parent / "samples" / "corpus"
VALID = sorted((CORPUS / "valid").glob("*.conf"))
INVALID = sorted((CORPUS / "invalid").glob("*.conf"))
BIN = Path(sys.executable).parent
ENV = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

# hand-written kill-switch hook lines that --from replaces (1-based), in the files that have them
REPLACED = {"manpage-wg-quick8-killswitch.conf": [5, 6], "mullvad-killswitch-export.conf": [5, 6]}
# what each refusal names (with the line number)
REFUSED = {
    "android-broken.conf": ":2: invalid privatekey (value not shown",
    "android-invalid-key.conf": ":9: invalid publickey",
    "android-invalid-number.conf": ":8: invalid persistentkeepalive '0L'",
    "android-invalid-value.conf": ":3: invalid dns 'invalid_value'",
    "android-missing-attribute.conf": ":5: this [Peer] has no PublicKey",
    "android-missing-section.conf": ": no [Interface] section",
    "android-syntax-error.conf": ":7: Endpoint has no value",
    "android-unknown-attribute.conf": ":8: unknown key 'DontLetTheFeelingFade' in [Peer]",
    "android-unknown-section.conf": ":5: unknown section '[Peers]'",
    "derived-cr-only.conf": ":1: unknown section '[Interface]\\rAddress'",
    "derived-empty-allowedips.conf": ":9: AllowedIPs has no value",
    "derived-interface-header-spaced.conf": ":2: wg-quick reads Address only after a header written exactly",
    "derived-key-before-section.conf": ":1: 'PrivateKey' before any section",
    "derived-line-without-equals.conf": ":4: expected 'Address = value'",
    "derived-listenport-in-peer.conf": ":11: ListenPort belongs in [Interface], not in [Peer]",
    "derived-postup-in-peer.conf": ":11: PostUp belongs in [Interface]",
    "derived-saveconfig-yes.conf": ":4: invalid saveconfig 'yes'",
    "derived-separator-in-key.conf": ":3: unknown key 'DNS\\u2028' in [Interface]",
    "derived-utf8-bom.conf": ":1: '\\ufeff[Interface]' before any section",
    "networkmanager-wg-test1.conf": ":2: invalid privatekey (value not shown",
    "networkmanager-wg-test2.conf": ":5: unknown section '[Beer]'",
    "wireproxy-socks5.conf": ":13: unknown section '[Socks5]'",
}


def _cli(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(BIN / "wgkill-render"), *argv], capture_output=True, check=False, timeout=30,
                          env=ENV)


def _strip(tmp_path: Path, data: bytes) -> list[bytes]:
    """What wg-quick hands to `wg setconf` (wg-quick's own parser), less comments and blank lines."""
    conf = tmp_path / "wgc0.conf"
    conf.write_bytes(data)
    conf.chmod(0o600)
    done = subprocess.run(["wg-quick", "strip", str(conf)], capture_output=True, check=False, timeout=30)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.split(b"\n") if line.split(b"#", 1)[0].strip()]


def _lines(data: bytes) -> list[bytes]:
    """Physical lines as wg-quick's `read -r` cuts them: after each \\n, nowhere else."""
    pieces = data.split(b"\n")
    return [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def test_corpus_is_listed_and_sourced() -> None:
    assert len(VALID) >= 15 and len(INVALID) >= 15
    assert sorted(p.name for p in INVALID) == sorted(REFUSED)
    sources = (CORPUS / "SOURCES.md").read_text()
    assert all(f"{p.parent.name}/{p.name}" in sources for p in VALID + INVALID)


@pytest.mark.parametrize("sample", VALID, ids=lambda p: p.name)
def test_from_keeps_every_byte_of_a_valid_config(sample: Path, tmp_path: Path) -> None:
    original = sample.read_bytes()
    done = _cli("--from", str(sample))
    assert done.returncode == 0, done.stderr
    assert b"error" not in done.stderr
    out = done.stdout
    newline = b"\r\n" if original.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    block = render.hook_block(HookOptions()).encode().replace(b"\n", newline)
    assert out.count(block) == 1 and out.count(b"wgkill-up") == 1  # the block says wgkill-up only once
    rest = out.replace(block, b"")
    gone = REPLACED.get(sample.name, [])
    kept = b"".join(ln for n, ln in enumerate(_lines(original), 1) if n not in gone)
    # the one byte --from may add: a newline ending a last line it appends the block after
    allowed = [kept] + ([kept + newline, kept + b"\n"] if not original.endswith(b"\n") else [])
    assert rest in allowed
    assert _strip(tmp_path, out) == _strip(tmp_path, original)  # wg gets exactly what it got before
    assert wgconf.parse_config(wgconf.decode(out)) == wgconf.parse_config(wgconf.decode(original))

    again = tmp_path / sample.name
    again.write_bytes(out)
    assert _cli("--from", str(again)).stdout == out  # idempotent: the block is found and kept as it is


@pytest.mark.parametrize("sample", INVALID, ids=lambda p: p.name)
def test_from_refuses_an_invalid_config_in_one_line(sample: Path) -> None:
    done = _cli("--from", str(sample))
    assert done.returncode == 3, done
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wgkill-render: error: "), done.stderr
    assert f"{sample}{REFUSED[sample.name]}" in lines[0], lines[0]


@pytest.mark.parametrize("sample", INVALID, ids=lambda p: p.name)
def test_in_place_leaves_an_invalid_config_untouched(sample: Path, tmp_path: Path) -> None:
    target = tmp_path / "wg0.conf"
    target.write_bytes(sample.read_bytes())
    target.chmod(0o600)
    assert _cli("--from", str(target), "--in-place").returncode == 3
    assert target.read_bytes() == sample.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["wg0.conf"]


def test_error_naming_a_path_with_a_line_break_stays_one_line(tmp_path: Path) -> None:
    odd = tmp_path / "wg\n0.conf"
    odd.write_bytes((CORPUS / "invalid" / "android-unknown-section.conf").read_bytes())
    done = _cli("--from", str(odd))
    assert done.returncode == 3
    assert len(done.stderr.decode().splitlines()) == 1 and "'" in done.stderr.decode()


# ---- random inputs: only the documented errors ---------------------------------------------------

TOKENS = ["\n", "\r\n", "\r", "\x00", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\ufeff", "\udcff",
          "#", "=", "[", "]", " ", "\t", ",", "%", "'", '"', ";", "&&", "\\", "é", "🚀", "[Interface]",
          "[Peer]", "PostUp", "PreDown", "wgkill-up %i", "wgkill-down", "# wgkill:", "Endpoint", "PublicKey",
          "AllowedIPs", "Address", "DNS", "Table", "0.0.0.0/0", "::/0", "host:1", "[::1]:2"]


def _mutations(rng: random.Random, count: int) -> list[str]:
    texts = [wgconf.decode(p.read_bytes()) for p in VALID + VALID + INVALID]
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            cut = rng.choice((0, 0, 1, rng.randint(1, 12)))
            text = text[:at] + (rng.choice(TOKENS) if rng.random() < 0.8 else "") + text[at + cut:]
        out.append(text)
    return out


def _random_texts(rng: random.Random, count: int) -> list[str]:
    texts = [wgconf.decode(rng.randbytes(rng.randint(0, 120))) for _ in range(count // 4)]
    texts += ["".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 40))) for _ in range(count // 4)]
    return texts + _mutations(rng, count - len(texts))


def _from(tmp_path: Path, data: bytes, **options: object) -> render.Rendered | None:
    """`--from` on ``data``; None when refused with the documented ConfigError (one line)."""
    path = tmp_path / "wg0.conf"
    path.write_bytes(data)
    try:
        return render.build(Request(source=str(path), **options), "/usr/bin",  # type: ignore[arg-type]
                            resolve=lambda host, port: "192.0.2.1")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).isprintable(), repr(str(exc))
        return None


def _hooks(result: render.Rendered) -> list[str]:
    """The keys of the lines that run wgkill-up/-down, as wg-quick will read them."""
    return [ln.key for ln in wgconf.read_lines(result.text)
            if ln.key in ("postup", "predown") and ln.value.split(" ", 1)[0] in ("wgkill-up", "wgkill-down")]


def test_random_input_gives_a_config_or_one_config_error(tmp_path: Path) -> None:
    rng = random.Random(11)  # noqa: S311 - seeded, so a failure is reproducible; no secret here
    accepted = 0
    for text in _random_texts(rng, 3000):
        data = wgconf.encode(text)
        try:
            wgconf.parse_config(text)
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc).isprintable(), repr(str(exc))
        result = _from(tmp_path, data, pin_endpoint=rng.random() < 0.3)
        if result is None:
            continue
        accepted += 1
        assert _hooks(result) == ["postup", "predown"], text
        again = _from(tmp_path, result.data)
        assert again is not None and again.data == result.data, text  # never a second block
        wgconf.parse_config(result.text)
    assert accepted > 100  # the mutations keep enough configs valid for the second half to mean something


UNSAFE = ([chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
          + ["\u2028", "\u2029", "\u200e", "\u202e", "\ufeff", "\udcff", "#", "%"])


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_no_control_or_separator_character_reaches_a_hook_line(char: str) -> None:
    for request in (Request(config=f"/etc/wireguard/a{char}b.conf"),
                    Request(split_file=f"/tmp/a{char}b.txt"),
                    Request(source=str(VALID[0]), config=f"/etc/wireguard/{char}.conf")):
        with pytest.raises(UsageError) as caught:
            render.build(request, "/usr/bin")
        assert "\n" not in str(caught.value) and str(caught.value).isprintable()
    assert unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"} or char in "#%"


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\r", "\x85", "\u2028", "\u2029"],
                         ids=lambda c: f"U+{ord(c):04X}")
def test_cli_refuses_a_line_separator_in_config_with_exit_2(char: str) -> None:
    done = _cli("--from", str(VALID[0]), "--config", f"/etc/wireguard/a{char}b.conf")
    assert done.returncode == 2 and done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wgkill-render: error: invalid --config "), done.stderr


def test_any_accepted_hook_value_survives_the_next_from(tmp_path: Path) -> None:
    """Values wgkill-render accepts are written so that --from reads its own block back as one block."""
    rng = random.Random(5)  # noqa: S311 - seeded, so a failure is reproducible; no secret here
    pool = "abc XYZ019 ._-/'\"\\$`!;&|()<>*?~{}[]=,:@^+ éßΩ東京🚀\u00a0\u3000"
    base = (CORPUS / "valid" / "manpage-wg-quick8-client.conf").read_bytes()
    for _ in range(200):
        config = "/etc/" + "".join(rng.choice(pool) for _ in range(rng.randint(1, 20)))
        first = _from(tmp_path, base, config=config)
        assert first is not None and _hooks(first) == ["postup", "predown"]
        same = _from(tmp_path, first.data, config=config)
        assert same is not None and same.data == first.data
        assert not any("replaced" in w for w in same.warnings)
        plain = _from(tmp_path, first.data)
        assert plain is not None and _hooks(plain) == ["postup", "predown"]
        assert plain.data == _from(tmp_path, base).data  # type: ignore[union-attr]
        assert any("replaced" in w for w in plain.warnings)
