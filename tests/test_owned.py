"""The guard's owned copy of a block (wgkill.owned): what it holds, from the recorded payload."""

import re
from pathlib import Path

import pytest

from wgkill.firewall.nft import parse_listing
from wgkill.owned import copy_definition

GOLDEN = Path(__file__).parent / "golden" / "nft"


def _interface(payload: str) -> str:
    found = re.search(r"(?m)^table inet wgkill-(\S+) \{$", payload)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.nft")))
def test_the_copy_holds_the_same_filter_chains_and_sets_renamed_and_owned(case: str) -> None:
    payload = (GOLDEN / f"{case}.nft").read_text()
    iface = _interface(payload)
    copy = copy_definition(iface, payload)
    assert copy.startswith(f"table inet wgkill_guard-{iface} {{\n\tflags owner\n")
    assert "delete table" not in copy and "add table" not in copy
    durable = parse_listing(payload)[f"wgkill-{iface}"]
    held = parse_listing(copy)[f"wgkill_guard-{iface}"]
    left_out = {"route", "route_nat", "exclude_mark", "exclude_restore", "exclude_nat"}
    assert set(held) == set(durable) - left_out
    for chain, rules in held.items():
        assert rules == durable[chain], chain  # rule for rule: the same block
    assert copy.count("\tset ") == payload.count("\tset ")


def test_marks_routing_and_nat_stay_the_durable_table_s_alone() -> None:
    copy = copy_definition("wg0", (GOLDEN / "routes.nft").read_text())
    assert "type route" not in copy and "type nat" not in copy and "masquerade" not in copy
    assert "hook postrouting" in copy  # route_guard: a drop, part of the block
