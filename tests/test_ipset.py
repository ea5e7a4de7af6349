"""ipset restore payloads and the routes record, without touching the system (the lab runs them)."""

import json

import pytest

from wgkill import ipset, names, routes
from wgkill.errors import StateError, UsageError
from wgkill.firewall.iptables_routes import chain_bodies
from wgkill.recordclass import asdict
from wgkill.records import route_record_from_json

LONGEST = "a" * 15


def test_set_names_fit_with_their_temporary() -> None:
    assert names.set_name("wg0", 4) == "wgkill-wg0-4"
    assert names.set_name("wg0", 6) == "wgkill-wg0-6"
    longest = names.set_name(LONGEST, 6)
    assert len(names.temp_set_name(longest)) <= ipset.MAX_NAME
    with pytest.raises(UsageError):
        names.set_name("wg0 -exist", 4)
    with pytest.raises(ValueError, match="family"):
        names.set_name("wg0", 5)


def test_payload_for_a_new_set_creates_fills_swaps_and_drops_the_temporary() -> None:
    payload = ipset.restore_payload("wgkill-wg0-4", 4, ["192.0.2.0/24", "198.51.100.7/32"], live_exists=False)
    spec = "hash:net family inet hashsize 1024 maxelem 65536"
    assert payload.splitlines() == [
        f"create wgkill-wg0-4-t {spec}",
        "add wgkill-wg0-4-t 192.0.2.0/24",
        "add wgkill-wg0-4-t 198.51.100.7/32",
        f"create wgkill-wg0-4 {spec}",
        "swap wgkill-wg0-4-t wgkill-wg0-4",
        "destroy wgkill-wg0-4-t",
    ]


def test_payload_for_an_existing_set_and_a_leftover_temporary() -> None:
    lines = ipset.restore_payload("wgkill-wg0-6", 6, ["2001:db8::/32"], live_exists=True,
                                  temp_exists=True).splitlines()
    assert lines[0] == "destroy wgkill-wg0-6-t"
    assert lines[1].startswith("create wgkill-wg0-6-t hash:net family inet6 ")
    assert not any(line.startswith("create wgkill-wg0-6 ") for line in lines)
    assert lines[-2:] == ["swap wgkill-wg0-6-t wgkill-wg0-6", "destroy wgkill-wg0-6-t"]


def test_an_empty_list_still_makes_a_set() -> None:
    lines = ipset.restore_payload("wgkill-wg0-4", 4, [], live_exists=False).splitlines()
    assert [line.split()[0] for line in lines] == ["create", "create", "swap", "destroy"]


def test_zero_length_prefixes_become_their_halves() -> None:
    # hash:net refuses a /0 ("The value of the CIDR parameter of the IP address is invalid")
    assert ipset.entries(4, ["0.0.0.0/0"]) == ["0.0.0.0/1", "128.0.0.0/1"]
    assert ipset.entries(6, ["::/0", "2001:db8::/32"]) == ["::/1", "8000::/1", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("count", "hashsize", "maxelem"),
    [(0, 1024, 65536), (2000, 1024, 65536), (78000, 65536, 156000), (100000, 65536, 200000),
     (300000, 262144, 600000)],
)
def test_sizing(count: int, hashsize: int, maxelem: int) -> None:
    assert ipset.sizing(count) == (hashsize, maxelem)


def test_payload_refuses_names_that_are_not_ours() -> None:
    for name in ("docker-set", "wgkill-x\ndestroy y", "wgkill-" + "a" * 30):
        with pytest.raises(ValueError, match="not a wgkill set name"):
            ipset.restore_payload(name, 4, [], live_exists=False)


# ---- routes: record and chain text ----------------------------------------------------------

def _record(interface: str = "wg0") -> routes.RouteRecord:
    mark, mask = 1 << 8, routes.MARK_MASK
    families = {f"ipv{family}": routes._family_record(interface, family, mark, mask, 52821, 32001)
                for family in (4, 6)}
    sysctls = [{"key": f"net/ipv4/conf/{interface}/rp_filter", "old": "1", "new": "2"}]
    return routes.RouteRecord(interface, mark, mask, 52821, 32001, "nf_tables", families, sysctls)


def test_record_round_trips_through_json() -> None:
    record = _record(LONGEST)
    again = route_record_from_json(json.loads(json.dumps(asdict(record))))
    assert again == record
    fam = again.families["ipv6"]
    assert fam.rule == "fwmark 0x100/0xf00 lookup 52821 priority 32001"
    assert fam.routes == [f"default dev {LONGEST} table 52821",
                          "unreachable default metric 4294967295 table 52821"]
    assert all(len(chain) <= 28 for chain in fam.chains.values())  # iptables' limit
    assert fam.chains["guard"] == f"wgkill-{LONGEST}-out"


def test_nft_records_have_no_chains_of_their_own_and_read_back() -> None:
    """With nft the marks are chains of the block's table: the record names none."""
    family = routes._family_record("wg0", 4, 1 << 8, routes.MARK_MASK, 52821, 32001, "nft")
    record = routes.RouteRecord("wg0", 1 << 8, routes.MARK_MASK, 52821, 32001, "", {"ipv4": family},
                                backend="nft")
    assert record.families["ipv4"].chains == {}
    assert route_record_from_json(json.loads(json.dumps(asdict(record)))) == record


def test_version_1_records_of_wgkill_0_1_are_still_read_as_written() -> None:
    """A tunnel routed by 0.1 (marks in bits 24-27, no postrouting guard) must come down cleanly."""
    v1 = {
        "interface": "wg0", "mark": 1 << 24, "mask": 0x0F000000, "table": 52821, "priority": 32001,
        "iptables_variant": "nf_tables", "sysctls": [], "version": 1,
        "families": {"ipv4": {
            "family": 4, "set_name": "wgkill-wg0-4",
            "rule": "fwmark 0x1000000/0xf000000 lookup 52821 priority 32001",
            "routes": ["default dev wg0 table 52821", "unreachable default metric 4294967295 table 52821"],
            "chains": {"mangle": "wgkill-wg0-rt", "nat": "wgkill-wg0-nat"},
            "jumps": [
                {"table": "mangle", "chain": "OUTPUT",
                 "spec": '-m comment --comment "wgkill:wg0:routes" -j wgkill-wg0-rt'},
                {"table": "nat", "chain": "POSTROUTING",
                 "spec": '-m comment --comment "wgkill:wg0:routes" -j wgkill-wg0-nat'},
            ],
        }},
    }
    record = route_record_from_json(json.loads(json.dumps(v1)))  # set_name, jumps: read by nobody
    assert record.version == 1 and record.families["ipv4"].chains == v1["families"]["ipv4"]["chains"]
    v1["families"]["ipv4"]["chains"]["guard"] = "wgkill-wg0-out"  # a guard 0.1 never wrote: refused
    with pytest.raises(StateError):
        route_record_from_json(v1)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["families"]["ipv4"].update(rule="fwmark 0x1 lookup main\nrule flush"),
        lambda d: d["families"]["ipv4"]["chains"].update(mangle="DOCKER"),
        lambda d: d["families"]["ipv6"]["routes"].append("default via 192.0.2.1"),
        lambda d: d.update(mark=0x10),  # outside the mask
        lambda d: d.update(table="52821"),
        lambda d: d.update(interface="wg0;reboot"),
        lambda d: d.update(version=3),
        lambda d: d.update(version=1),  # a version-2 layout claiming to be 0.1's
        lambda d: d["families"].update(ipv5=d["families"]["ipv4"]),
        lambda d: d.pop("table"),
        lambda d: d["sysctls"].append({"key": "net/ipv4/ip_forward", "old": "1", "new": "0"}),
        lambda d: d["sysctls"][0].update(old="1; reboot"),
    ],
)
def test_tampered_records_are_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    data = asdict(_record())
    tamper(data)
    with pytest.raises(StateError):
        route_record_from_json(json.loads(json.dumps(data)))


def test_chain_bodies_exempt_the_tunnels_own_packets_before_marking() -> None:
    bodies = chain_bodies("wg0", 4, 1 << 8, routes.MARK_MASK, [("198.51.100.2", 51820)], 0xCA6C)
    assert bodies["mangle"] == [
        "-A wgkill-wg0-rt -m mark --mark 0xca6c -j RETURN",
        "-A wgkill-wg0-rt -d 198.51.100.2/32 -p udp -m udp --dport 51820 -j RETURN",
        "-A wgkill-wg0-rt -m set --match-set wgkill-wg0-4 dst -j MARK --set-xmark 0x100/0xf00",
    ]
    assert bodies["nat"] == ["-A wgkill-wg0-nat -o wg0 -m mark --mark 0x100/0xf00 -j MASQUERADE"]
    assert bodies["guard"] == ["-A wgkill-wg0-out -m mark --mark 0x100/0xf00 ! -o wg0 -j DROP"]
    six = chain_bodies("wg0", 6, 2 << 8, routes.MARK_MASK, [("2001:db8::0:2", 51820)])
    assert six["mangle"][0] == "-A wgkill-wg0-rt -d 2001:db8::2/128 -p udp -m udp --dport 51820 -j RETURN"
    with pytest.raises(ValueError):
        chain_bodies("wg0", 4, 1 << 8, routes.MARK_MASK, [("198.51.100.2\n-F", 1)])


def test_slots_avoid_wg_quick_and_each_other() -> None:
    marks = {slot << routes.MARK_SHIFT for slot in routes.SLOTS}
    assert len(marks) == 14 and all(m & ~routes.MARK_MASK == 0 for m in marks)
    assert all((51820 + n) & routes.MARK_MASK != m for m in marks for n in range(16))  # wg-quick's fwmarks
    well_known = 0x4000 | 0x8000 | 0xFF0000 | 0xFFFF0000  # Kubernetes, Tailscale, Calico
    assert routes.MARK_MASK & well_known == 0
    tables = {routes.TABLE_BASE + slot for slot in routes.SLOTS}
    assert not tables & set(range(51820, 51830))
    assert max(routes.PRIORITY_BASE + slot for slot in routes.SLOTS) < 32764
