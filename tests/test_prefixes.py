"""Prefix lists: parsing, collapsing, the v4/v6 split, and invalid lines refusing the whole list."""

import ipaddress
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wgkill import prefixes
from wgkill.errors import ConfigError
from wgkill.prefixes import PrefixList, load_file, merge, parse_allowed_ips, parse_lines


def _reference(lines: list[str]) -> tuple[list[str], list[str]]:
    nets = [ipaddress.ip_network(line, strict=False) for line in lines]
    return (
        [str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == 4)],
        [str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == 6)],
    )


def test_siblings_merge_into_their_parent_repeatedly() -> None:
    listed = parse_lines(["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26", "10.0.0.192/26", "10.0.1.0/24"])
    assert listed.v4 == ("10.0.0.0/23",)


def test_non_siblings_do_not_merge() -> None:
    # adjacent but not the two halves of one block
    listed = parse_lines(["10.0.1.0/24", "10.0.2.0/24"])
    assert listed.v4 == ("10.0.1.0/24", "10.0.2.0/24")


def test_duplicates_and_nested_prefixes_collapse() -> None:
    listed = parse_lines(["10.1.0.0/16", "10.0.0.0/8", "10.1.2.3/32", "10.0.0.0/8", "192.0.2.0/24"])
    assert listed.v4 == ("10.0.0.0/8", "192.0.2.0/24")
    assert listed.read == 5


def test_families_are_split_and_sorted() -> None:
    listed = parse_allowed_ips("2001:db8::/32, 198.51.100.0/24 192.0.2.0/24,::/0")
    assert listed.v4 == ("192.0.2.0/24", "198.51.100.0/24")
    assert listed.v6 == ("::/0",)
    assert listed.family(4) == listed.v4 and listed.family(6) == listed.v6
    assert len(listed) == 3 and bool(listed)
    assert not PrefixList()


def test_default_routes_and_bare_addresses() -> None:
    listed = parse_lines(["0.0.0.0/0", "1.2.3.4", "2001:db8::1"])
    assert listed.v4 == ("0.0.0.0/0",)
    assert listed.v6 == ("2001:db8::1/128",)
    assert parse_lines(["1.2.3.4"]).v4 == ("1.2.3.4/32",)


def test_host_bits_are_normalised_like_wg_and_counted() -> None:
    # `wg set ... allowed-ips 10.0.0.1/24` is accepted and shown as 10.0.0.0/24: do the same.
    listed = parse_lines(["10.0.0.1/24", "2001:db8::1/64", "192.0.2.0/24"])
    assert listed.v4 == ("10.0.0.0/24", "192.0.2.0/24")
    assert listed.v6 == ("2001:db8::/64",)
    assert listed.normalised == 2


def test_comments_blank_lines_and_crlf() -> None:
    text = (
        "# a provider's list\r\n\r\n10.0.0.0/8   # trailing comment\r\n   \r\n\t192.0.2.0/24\r\n#10.9.9.9\n"
    )
    listed = parse_lines(text.splitlines())
    assert listed.v4 == ("10.0.0.0/8", "192.0.2.0/24")
    assert listed.read == 2


@pytest.mark.parametrize(
    "bad",
    [
        "10.0.0.0/33", "2001:db8::/129", "300.1.2.3/8", "1.2.3", "01.2.3.4", "1.2.3.4/-1", "1.2.3.4/",
        "fe80::1%eth0", "10.0.0.0/255.0.0.0", "example.com", "1.2.3.0/24 5.6.7.0/24", "1.2.3.0/24,5.6.7.0/24",
        ":::", "1.2.3.4/1000",
    ],
)
def test_invalid_entries_are_refused_with_their_line(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_lines(["10.0.0.0/8", "# comment", bad], "list.txt")
    message = str(caught.value)
    assert message.startswith("list.txt: 1 invalid entry, nothing applied: line 3: ")
    assert repr(bad) in message


def test_many_invalid_lines_show_the_first_five_and_the_count() -> None:
    lines = ["10.0.0.0/8"] + [f"bad{i}" for i in range(9)] + ["192.0.2.0/24", "10.0.0.0/40"]
    with pytest.raises(ConfigError) as caught:
        parse_lines(lines, "big.txt")
    message = str(caught.value)
    assert "big.txt: 10 invalid entries, nothing applied" in message
    for number in (2, 3, 4, 5, 6):
        assert f"line {number}: 'bad{number - 2}'" in message
    assert "line 7" not in message
    assert message.endswith("; and 5 more")
    assert ConfigError.exit_code == 3


def test_allowed_ips_errors_name_the_entry() -> None:
    with pytest.raises(ConfigError, match=r"AllowedIPs: 1 invalid entry.*entry 2: '10\.0\.0\.0/99'"):
        parse_allowed_ips(["0.0.0.0/0,", " 10.0.0.0/99"])


def test_long_garbage_is_shortened_in_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_lines(["x" * 500])
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_result_as_ipaddress_collapse_addresses(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    lines = []
    for _ in range(3000):
        if rng.random() < 0.7:
            # a small space, so duplicates, nesting and siblings are frequent
            base = (10 << 24) | rng.getrandbits(14) << 10
            lines.append(str(ipaddress.ip_network((base, rng.randint(8, 32)), strict=False)))
        else:
            base = (0x20010DB8 << 96) | rng.getrandbits(16) << 80
            lines.append(str(ipaddress.ip_network((base, rng.randint(32, 128)), strict=False)))
    listed = parse_lines(lines)
    want4, want6 = _reference(lines)
    assert list(listed.v4) == want4
    assert [str(ipaddress.ip_network(p)) for p in listed.v6] == want6


def test_collapse_merges_siblings_and_drops_duplicates_and_nested() -> None:
    assert parse_lines(["0.0.0.0/1", "128.0.0.0/1"]).v4 == ("0.0.0.0/0",)
    assert parse_lines(["0.0.5.0/24", "0.0.5.0/24", "0.0.5.0/32"]).v4 == ("0.0.5.0/24",)


def test_merge_recollapses_and_adds_counts() -> None:
    config = parse_allowed_ips("10.0.0.0/25, 2001:db8::/33")
    listed = parse_lines(["10.0.0.128/25", "2001:db8:8000::/33", "10.0.0.5/24"])
    merged = merge(config, listed)
    assert merged.v4 == ("10.0.0.0/24",)
    assert merged.v6 == ("2001:db8::/32",)
    assert merged.read == 5 and merged.normalised == 1


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("# comment\n203.0.113.0/24\n2001:db8:80::/48\n")
    listed = load_file(path)
    assert listed.v4 == ("203.0.113.0/24",) and listed.v6 == ("2001:db8:80::/48",)
    path.write_bytes(b"10.0.0.0/8\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read prefix file"):
        load_file(path)
    with pytest.raises(ConfigError, match="No such file"):
        load_file(tmp_path / "missing.txt")


def test_bad_line_in_a_large_file_names_its_number(tmp_path: Path) -> None:
    lines = [f"{ipaddress.IPv4Address((11 << 24) + i * 512)}/24" for i in range(20000)]
    lines[12344] = "11.0.0.0/24x"
    path = tmp_path / "large.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"1 invalid entry, nothing applied: line 12345: '11\.0\.0\.0/24x'"):
        load_file(path)


def test_100000_lines_parse_and_collapse_fast() -> None:
    # A regression guard with room for a slow CI machine: measured ~0.25 s here
    # (ipaddress.ip_network + collapse_addresses: ~2.5 s).
    lengths = (24, 25, 26, 28, 32)
    lines = [f"{ipaddress.IPv4Address((11 << 24) + i * 512)}/{lengths[i % 5]}" for i in range(100000)]
    started = time.perf_counter()
    listed = parse_lines(lines)
    elapsed = time.perf_counter() - started
    assert len(listed.v4) == 100000
    assert elapsed < 2.0, f"100,000 lines took {elapsed:.2f}s"


def test_uncovered_counts_listed_prefixes_no_cover_prefix_holds_whole() -> None:
    cover = prefixes.parse_allowed_ips("10.66.0.0/24, 2001:db8:1::/48")
    listed = prefixes.parse_lines(["10.66.0.0/25", "10.66.0.128/26", "10.66.0.0/23", "203.0.113.10",
                                   "2001:db8:1:2::/64", "2001:db8:2::/48"])
    # collapsed: 10.66.0.0/23 swallows the /25 and /26; it, 203.0.113.10 and 2001:db8:2::/48 are out
    assert prefixes.uncovered(listed, cover) == 3
    assert prefixes.uncovered(listed, prefixes.parse_allowed_ips("0.0.0.0/0, ::/0")) == 0
    assert prefixes.uncovered(listed, prefixes.parse_allowed_ips("0.0.0.0/0")) == 2  # IPv6 still out
    assert prefixes.uncovered(prefixes.PrefixList(), cover) == 0


def _random_lines(rng: random.Random, count: int) -> list[str]:
    """Prefix-file lines in a small space (duplicates, nesting, siblings and neighbours frequent):
    host bits set, bare addresses, comments, blanks and tabs among them."""
    lines = []
    for _ in range(count):
        roll = rng.random()
        host = rng.getrandbits(8) * rng.randint(0, 1)  # host bits set about half the time
        if roll < 0.6:
            address = ipaddress.IPv4Address((10 << 24) | rng.getrandbits(12) << 12 | host)
            lines.append(f"{address}" + ("" if rng.random() < 0.1 else f"/{rng.randint(14, 32)}"))
        elif roll < 0.9:
            address6 = ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(16) << 80 | host)
            lines.append(f"{address6}" + ("" if rng.random() < 0.1 else f"/{rng.randint(32, 128)}"))
        elif roll < 0.95:
            lines.append(rng.choice(["", "  # a comment", "#10.0.0.0/8"]))
        else:
            spaced = ipaddress.IPv4Address((10 << 24) | rng.getrandbits(16) << 8)
            lines.append(f" \t{spaced}/{rng.randint(16, 24)}  # x")
    return lines


def _entries(lines: list[str]) -> list[str]:
    return [entry for line in lines if (entry := line.split("#")[0].strip())]


@pytest.mark.parametrize("seed", range(12))
def test_bulk_reading_equals_line_by_line_and_ipaddress(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    lines = _random_lines(rng, rng.choice([1, 2, 7, 60, 600, 3000]))
    text = "\n".join(lines) + rng.choice(["", "\n"])
    bulk, by_line = prefixes.parse_text(text), parse_lines(text.splitlines())
    assert (bulk.v4, bulk.v6, bulk.read, bulk.normalised) == (
        by_line.v4, by_line.v6, by_line.read, by_line.normalised)
    want4, want6 = _reference(_entries(lines))
    assert list(bulk.v4) == want4
    assert list(bulk.v6) == [ipaddress.ip_network(p).compressed for p in want6]


@pytest.mark.parametrize("seed", range(12))
def test_merge_splices_or_collapses_as_ipaddress_would(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    lines = _random_lines(rng, rng.choice([0, 1, 60, 3000]))
    extra = _entries(_random_lines(rng, rng.choice([1, 3, 20, 400])))  # over SPLICE_MAX: all collapse
    listed, config = prefixes.parse_text("\n".join(lines)), parse_allowed_ips(extra)
    want4, want6 = _reference(_entries(lines) + extra)
    unpacked = PrefixList(listed.v4, listed.v6)  # built by hand: no integers carried
    for merged in (merge(listed, config), merge(config, listed), merge(unpacked, config)):
        assert list(merged.v4) == want4
        assert list(merged.v6) == [ipaddress.ip_network(p).compressed for p in want6]
        assert merged.packed and [len(keys) for keys in merged.packed] == [len(merged.v4), len(merged.v6)]


@pytest.mark.parametrize("text", [
    "10.0.0.0/8\r\n192.0.2.0/24\r\n",  # CRLF: the bulk reader
    "10.0.0.0/8\r192.0.2.0/24\n",  # a lone CR: line by line
    "\ufeff10.0.0.0/8\n",  # a BOM: refused either way
    "10.0.0.0/024\n10.0.0.0/8\n",  # a length with a leading zero: formatted, not kept
    "010.0.0.0/8\n", "10.0.0.0/8 192.0.2.0/24\n", "10.0.0.0/33\n", "2001:db8::/129\n", "abc\n", "1.2.3.4/\n",
    "\v10.0.0.0/8\x0c\n", "10.0.0.0/8\x1c192.0.2.0/24\n", "", "\n\n", "# only a comment",
])
def test_bulk_reading_agrees_on_odd_texts(text: str) -> None:
    def parsed(read: Callable[[], PrefixList]) -> object:
        try:
            listed = read()
        except ConfigError as exc:
            return str(exc)
        return (listed.v4, listed.v6, listed.read, listed.normalised)

    by_line = parsed(lambda: parse_lines(text.splitlines(), "f"))
    assert parsed(lambda: prefixes.parse_text(text, "f")) == by_line


def test_a_large_list_keeps_its_texts_and_merges_without_parsing_again() -> None:
    lines = [f"{(i >> 16) + 100}.{(i >> 8) & 255}.{i & 255}.0/25" for i in range(100_000)]
    listed = prefixes.parse_text("\n".join(lines) + "\n")
    assert listed.v4 == tuple(lines) and listed.read == 100_000
    merged = merge(listed, parse_allowed_ips("203.0.113.80/32, 100.0.0.128/25"))
    assert merged.v4[0] == "100.0.0.0/24" and "203.0.113.80/32" in merged.v4 and len(merged.v4) == 100_001


def test_a_parsed_list_comes_back_from_the_cache_until_its_text_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from wgkill import rendercache

    monkeypatch.setenv("WGKILL_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "list.txt"
    path.write_text("# comment\n10.0.0.1/24\n10.0.1.0/24\n2001:db8::/33\n2001:db8:8000::/33\n")
    assert rendercache.prefix_list(str(path), save_new=False) == load_file(path)
    assert not (tmp_path / "state").exists()  # --dry-run: nothing written
    first = rendercache.prefix_list(str(path))
    with monkeypatch.context() as patched:
        patched.setattr(prefixes, "parse_text", None)  # a hit does not parse
        cached = rendercache.prefix_list(str(path))
    assert cached == first == load_file(path)
    assert cached.v4 == ("10.0.0.0/23",) and cached.v6 == ("2001:db8::/32",)
    assert (cached.read, cached.normalised, cached.packed) == (first.read, first.normalised, first.packed)
    assert merge(cached, parse_allowed_ips("10.0.2.0/23")).v4 == ("10.0.0.0/22",)
    path.write_text("192.0.2.0/24\n")  # changed: parsed again
    assert rendercache.prefix_list(str(path)).v4 == ("192.0.2.0/24",)
    entry = next((tmp_path / "state" / rendercache.CACHE_DIR).glob("prefixes-*.json"))
    good = json.loads(entry.read_text())
    for broken in ({**good, "packed": [[1, 2], []]}, {**good, "v4": 5}, {**good, "read": "x"}, "{"):
        entry.write_text(broken if isinstance(broken, str) else json.dumps(broken))
        assert rendercache.prefix_list(str(path)).v4 == ("192.0.2.0/24",)
    path.write_text("not a prefix\n")
    with pytest.raises(ConfigError, match="1 invalid entry"):
        rendercache.prefix_list(str(path))
