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

``check_protection`` is what ``wgkill-status`` calls; nothing here prints or exits.
"""

from ..firewall.facts import ChainFacts, SetFacts
from .document import SCHEMA_VERSION, report_dict
from .facts import (
    HostFacts,
    InterfaceFacts,
    LinkFacts,
    Nameserver,
    RouteGap,
    WgFacts,
    handshake_age,
)
from .gathering import gather
from .metrics import prometheus
from .probing import (
    DEFAULT_PROBE_PORT,
    DEFAULT_PROBE_TIMEOUT,
    DEFAULT_TARGETS,
    ProbeResult,
    ProbeSpec,
    plan_excluded_probes,
    plan_probes,
    probe,
    probe_in_cgroup,
)
from .text import human
from .verdicts import InterfaceStatus, Problem, Report, Verdict, ago, judge, judge_interface, worst

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


def check_protection(interface: str | None = None, *, probe_targets: dict[int, str] | None = None,
                     probe_port: int = DEFAULT_PROBE_PORT, probe_timeout: float | None = None,
                     probe_excluded: bool = False) -> Report:
    """Gather, optionally probe (``probe_timeout`` set; ``probe_excluded``: also from the exclusion
    cgroup, on purpose), and judge: what the CLI calls."""
    host = gather(interface, targets=probe_targets)
    probes = excluded = None
    if probe_timeout is not None and host.uid == 0:
        probes = probe(plan_probes(host, probe_targets, probe_port), probe_timeout)
    if probe_excluded and host.uid == 0:
        specs = plan_excluded_probes(host, probe_targets, probe_port)
        timeout = probe_timeout or DEFAULT_PROBE_TIMEOUT
        cgroup = next((f.exclusion for f in host.interfaces
                       if f.exclusion is not None and f.exclusion.present and f.exclusion.path), None)
        if cgroup is None:
            excluded = [ProbeResult(s.name, s.protocol, s.family, s.target, s.port, s.device, "skipped",
                                    "no tunnel here allows exclusion (wgkill-up --allow-exclude)")
                        for s in specs]
        else:
            excluded = probe_in_cgroup(f"{cgroup.path}/cgroup.procs", specs, timeout)
    return judge(host, probes, excluded)
