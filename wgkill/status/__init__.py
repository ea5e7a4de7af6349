"""Is each tunnel protected, blocking, or leaking? Facts, verdicts, and a probe that tries to leak.

Three layers, so each can be tested on its own, and the reports:

* ``facts``: the records, plain data. ``gathering`` fills them from the
  machine (the state files; ``netlink``: links, addresses, routes, policy
  rules; ``chains``: the live chains via ``iptables-save`` of the recorded
  variant; the last handshake via ``wgkill.tunnel``; ``nameservers``: the
  resolvers the system will use). It decides nothing.
* ``verdicts`` turns those facts into a verdict per interface and overall, in
  the monitoring-plugin convention, each problem with the command that fixes
  it. It reads nothing, so unit tests feed it synthetic facts.
* ``probing`` sends real packets the way a leak would and watches the uplink
  to see which got out: the rules can look right and still not hold.
* the reports: ``document`` (``--json``, docs/status.schema.json), ``text``
  (the plugin line and the facts, for people), ``metrics`` (Prometheus).

``check_protection`` is what ``wgkill-status`` calls; nothing here prints or exits. A monitor runs
it every few seconds, so what a plain check does not use loads on first use (``__getattr__``):
``probing`` (sockets, selectors) and ``metrics`` (issue 21: status within one rule cycle).
"""

from __future__ import annotations

from ..firewall.facts import ChainFacts, SetFacts
from .document import SCHEMA_VERSION, report_dict
from .facts import (
    DEFAULT_PROBE_PORT,
    DEFAULT_PROBE_TIMEOUT,
    DEFAULT_TARGETS,
    HostFacts,
    InterfaceFacts,
    LinkFacts,
    Nameserver,
    RouteGap,
    WgFacts,
    handshake_age,
)
from .gathering import gather
from .text import human
from .verdicts import InterfaceStatus, Problem, Report, Verdict, ago, judge, judge_interface, worst

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a check pays ~4 ms)
if TYPE_CHECKING:
    from .metrics import prometheus
    from .probing import (
        ProbeResult,
        ProbeSpec,
        plan_excluded_probes,
        plan_probes,
        probe,
        probe_in_cgroup,
    )

_LAZY = {"prometheus": "metrics", "ProbeResult": "probing", "ProbeSpec": "probing",
         "plan_excluded_probes": "probing", "plan_probes": "probing", "probe": "probing",
         "probe_in_cgroup": "probing"}

__all__ = [
    "DEFAULT_PROBE_PORT",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_TARGETS",
    "SCHEMA_VERSION",
    "ChainFacts",
    "HostFacts",
    "InterfaceFacts",
    "InterfaceStatus",
    "LinkFacts",
    "Nameserver",
    "ProbeResult",
    "ProbeSpec",
    "Problem",
    "Report",
    "RouteGap",
    "SetFacts",
    "Verdict",
    "WgFacts",
    "ago",
    "check_protection",
    "gather",
    "handshake_age",
    "human",
    "judge",
    "judge_interface",
    "plan_excluded_probes",
    "plan_probes",
    "probe",
    "probe_in_cgroup",
    "prometheus",
    "report_dict",
    "worst",
]


def __getattr__(name: str) -> object:
    """The names of ``_LAZY``, imported from their module when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)


def check_protection(interface: str | None = None, *, probe_targets: dict[int, str] | None = None,
                     probe_port: int = DEFAULT_PROBE_PORT, probe_timeout: float | None = None,
                     probe_excluded: bool = False) -> Report:
    """Gather, optionally probe (``probe_timeout`` set; ``probe_excluded``: also from the exclusion
    cgroup, on purpose), and judge: what the CLI calls."""
    host = gather(interface, targets=probe_targets)
    if host.uid != 0 or (probe_timeout is None and not probe_excluded):
        return judge(host)  # a plain check: probing is never imported
    probes, excluded = _probe(host, probe_targets, probe_port, probe_timeout, probe_excluded)
    return judge(host, probes, excluded)


def _probe(host: HostFacts, targets: dict[int, str] | None, port: int, timeout: float | None,
           from_exclusion: bool) -> tuple[list[ProbeResult] | None, list[ProbeResult] | None]:
    from . import probing

    probes = excluded = None
    if timeout is not None:
        probes = probing.probe(probing.plan_probes(host, targets, port), timeout)
    if from_exclusion:
        specs = probing.plan_excluded_probes(host, targets, port)
        cgroup = next((f.exclusion for f in host.interfaces
                       if f.exclusion is not None and f.exclusion.present and f.exclusion.path), None)
        if cgroup is None:
            why = "no tunnel here allows exclusion (wgkill-up --allow-exclude)"
            excluded = [probing.ProbeResult(s.name, s.protocol, s.family, s.target, s.port, s.device,
                                            "skipped", why) for s in specs]
        else:
            excluded = probing.probe_in_cgroup(f"{cgroup.path}/cgroup.procs", specs,
                                               timeout or DEFAULT_PROBE_TIMEOUT)
    return probes, excluded
