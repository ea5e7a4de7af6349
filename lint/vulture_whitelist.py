# ruff: noqa: B018 - bare attribute reads are how vulture whitelists mark a name used
"""Names vulture cannot see used: read by the Jinja templates (templates/) or by the standard library.

Each entry says who reads it. Anything else vulture reports is dead code: delete it.
"""

import shlex

from wgkill import status
from wgkill.cli.args import Parser
from wgkill.firewall.nft_render import NftFamily, NftTable
from wgkill.policy import FamilyPolicy

NftFamily.nfproto  # templates/nft/table.nft.j2: the family's nfproto match
NftFamily.addr_type  # templates/nft/table.nft.j2: ipv4_addr / ipv6_addr sets
NftFamily.reject  # templates/nft/_rules.j2, table.nft.j2: the family's reject statement
NftTable.private_names  # templates/nft/_rules.j2, table.nft.j2: the DNS lock's private names
NftTable.forward  # templates/nft/_rules.j2, table.nft.j2: a gateway's forward chain
FamilyPolicy.reject_with  # templates/_dns_lock.j2: iptables' --reject-with
FamilyPolicy.host_prefix  # templates/killswitch.rules.j2, _dns_lock.j2: /32 or /128
FamilyPolicy.dns_any_via_tunnel  # templates/_dns_lock.j2, nft/_rules.j2
FamilyPolicy.uplink_upkeep  # templates/killswitch.rules.j2, nft/_rules.j2: DHCP/ND beside the tunnel

shlex.shlex.whitespace_split  # wgkill/confedit.py sets it; shlex reads it

status.__getattr__  # PEP 562: Python calls it for the names wgkill.status loads on first use

Parser._get_formatter  # argparse calls it for every help text and usage line
object.__hash__  # wgkill/recordclass.py sets it on records; hash(), sets and dict keys read it
