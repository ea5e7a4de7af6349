"""wgkill: a leak-proof kill switch for wg-quick tunnels.

The library decides (policy), renders (templates), applies (firewall backend)
and remembers (state); the CLI modules in ``wgkill.cli`` only parse arguments
and map errors to exit codes.
"""

__version__ = "0.1.0"
