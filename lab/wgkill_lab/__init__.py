"""wgkill's test lab: throwaway network namespaces where the kill switch is shown for real.

Not part of the product: a separate distribution (``wgkill-lab``, in ``lab/``),
installed by ``make venv`` for the demo, the tests and the benchmark, never
by ``pip install .``. Modules, by what they hold:

* ``netns``: the client / isp / vpn namespaces, tunnels, far-side counters.
* ``servers``: the web server, UDP sink and probe that run inside them.
* ``bundles``: the cache of unpacked (never installed) Debian packages.
* ``resolvers``: logging DNS resolvers (dnsmasq, unbound DoT) that testify.
* ``resolved_harness``: a real systemd-resolved in the client, installed nowhere.
* ``resolvconf_harness``: a real openresolv in the client, installed nowhere.
* ``routes_driver``: runs the split-tunnel set and routes steps for tests and bench.
* ``demo``: ``make demo``.
"""

__version__ = "0.1.0"
