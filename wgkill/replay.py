"""The one way back from a recorded state, for boot, the guard and composition.

Two ways, and which one each caller takes:

- ``replay`` puts back exactly the rule text the state records (the nft
  payload, the iptables chain bodies), through the backend it records: boot
  (``killswitch.boot``) and the guard's repairs. Nothing is re-planned, so
  what comes back is what was checked when it was applied.
- ``replan`` renders the recorded *policy* (``State.policies``) again with one
  thing changed, the list of peer tunnels, and applies and records it:
  composition (``compose.recompose``), when another tunnel comes or goes.

After an upgrade the recorded text wins: boot and the guard replay it as the
old version wrote it, and only a new ``wgkill-up`` (or a peer tunnel's
up/down, which re-plans) renders it with the new templates. A state without a
recorded policy (wgkill 0.1) is only ever replayed.

The split list (``--allowed-ips-file``) is read at most once per operation
(``recorded_split``), and only where the backend needs it: iptables refills its
ipsets on replay; nft renders the elements into its one payload on replan. It
is parsed only when its text changed since the last parse
(``rendercache.prefix_list``).
"""

from __future__ import annotations

import copy

from . import prefixes
from . import state as statefile
from .firewall import backend as make_backend
from .firewall import nft_payload
from .policy import FamilyPolicy, KillSwitchPolicy, decide_split

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from .exclusion import ExclusionRecord


def recorded_split(recorded: statefile.State) -> prefixes.PrefixList | None:
    """The split destinations the state was applied with: its AllowedIPs and its list file."""
    from . import rendercache  # only split tunnels with a list file pay for this import

    listed = rendercache.prefix_list(recorded.allowed_ips_file) if recorded.allowed_ips_file else None
    return decide_split(prefixes.parse_allowed_ips(recorded.allowed_ips), listed)


def replayable(recorded: statefile.State) -> bool:
    """Whether the state holds the rule text to re-apply (the nft payload, or every chain's body)."""
    if recorded.nft is not None:
        return bool(recorded.nft.payload)
    return bool(recorded.families) and all(rec.bodies for rec in recorded.families.values())


def replay(recorded: statefile.State, *, sets: bool = True,
           excluding: ExclusionRecord | None = None) -> None:
    """Put back exactly what ``recorded`` says was applied, through the backend it records.
    ``sets``: refill the split sets too where they live apart from the rules (iptables' ipsets,
    from the recorded list); ``excluding``: the exclusion's own rules too (its cgroup made
    first). May be called any number of times."""
    firewall = make_backend(recorded.backend)
    split = None
    if sets and not firewall.sets_in_payload and recorded.split_sets():
        split = recorded_split(recorded)
    firewall.boot(recorded, split, sets=sets)
    if excluding is not None:
        firewall.apply_exclusion(excluding, recorded)


def replan(recorded: statefile.State, policies: list[FamilyPolicy]) -> None:
    """Apply ``policies`` (the recorded ones, peers changed) for ``recorded``'s interface through
    the backend it records, and record them. The split sets keep what they hold (iptables: the
    ipsets are not touched; nft: the recorded list is rendered into the one payload again)."""
    firewall = make_backend(recorded.backend)
    split = None
    if firewall.sets_in_payload and any(fp.split_set for fp in policies):
        split = recorded_split(recorded)
    policy = _policy(recorded, policies, split)
    previous = copy.deepcopy(recorded)
    plan = firewall.plan(policy, split)
    firewall.record(plan, recorded)
    for family, rec in recorded.families.items():  # the sets were not refilled: what they held stays
        old = previous.families.get(family)
        rec.set_entries = old.set_entries if old else None
    if recorded.nft is not None and previous.nft is not None:
        recorded.nft.set_entries = previous.nft.set_entries
    firewall.apply(plan, recorded, previous)
    recorded.policies = tuple(policies)
    statefile.save(recorded)


def _policy(recorded: statefile.State, policies: list[FamilyPolicy],
            split: prefixes.PrefixList | None) -> KillSwitchPolicy:
    from .dns import DnsPlan

    endpoints = tuple(e for fp in policies for e in fp.endpoints)
    # The DNS lock is in each FamilyPolicy already; the resolver is not this path's business.
    return KillSwitchPolicy(recorded.interface, recorded.fwmark, endpoints, tuple(recorded.allowed_ips),
                            tuple(policies), DnsPlan(), split)


def nft_text(recorded: statefile.State) -> str | None:
    """The recorded block as one nft transaction, whatever backend applied it (the guard's owned
    copy, ``wgkill.owned``): the recorded nft payload, or else the recorded policy rendered for
    nft. None when the state holds neither (wgkill 0.1)."""
    if recorded.nft is not None and recorded.nft.payload:
        return recorded.nft.payload
    if not recorded.policies:
        return None
    policies = list(recorded.policies)
    split = recorded_split(recorded) if any(fp.split_set for fp in policies) else None
    return nft_payload(_policy(recorded, policies, split), split)
