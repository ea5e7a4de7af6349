"""Section 8 manual pages, written from each command's own argparse parser.

Run at package build time (``python3 -m wgkill.cli.manpage DIR``, see
debian/rules and ``make install``), so a page cannot drift from ``--help``:
the commands are the distribution's console scripts (setup.cfg), every option,
metavar, choice and help line comes from ``build_parser()`` of the module each
one points at. argparse has no public way to walk a parser's groups; the
attributes used here (``_action_groups``, ``_group_actions``) are the ones
argparse's own help formatter reads.
"""

import argparse
import datetime
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from importlib.metadata import distribution
from pathlib import Path

from .. import __version__, errors
from ..recordclass import dataclass

SECTION = "8"
DISTRIBUTION = "wgkill"

ENVIRONMENT = (
    ("WGKILL_STATE_DIR", "where the state files live instead of /var/lib/wgkill (the tests' labs use it)."),
    ("WGKILL_DEBUG", "set to 1 to see a traceback instead of the one-line internal error."),
    ("WGKILL_EXCLUDE_CGROUP", "the exclusion cgroup's name under the cgroup v2 root instead of "
     "wgkill-exclude (the tests' labs use it)."),
)
FILES = (
    ("/etc/wireguard/IFACE.conf", "the wg-quick config read by wgkill-up (or --config PATH)."),
    ("/var/lib/wgkill/IFACE.json", "what wgkill-up applied for IFACE: present while a block is engaged."),
    ("/var/lib/wgkill/exclude.log", "one line per wgkill-exclude: when, which process, by whom, as whom."),
)
HOOKS = "PostUp = wgkill-up %i\nPreDown = wgkill-down %i"
STATUS_CODES = (  # the monitoring-plugin convention (wgkill.status.Verdict)
    (0, "OK: the tunnel is up and protected."),
    (1, "WARNING: the tunnel is down and the block holds (safe, offline)."),
    (2, "CRITICAL: traffic or DNS can leak."),
    (3, "UNKNOWN: cannot tell, usage and internal errors included."),
)


@dataclass(frozen=True)
class Command:
    name: str
    module: str


def commands() -> list[Command]:
    """The installed distribution's console scripts: the one list of commands (setup.cfg)."""
    found = [Command(ep.name, ep.value.split(":")[0])
             for ep in distribution(DISTRIBUTION).entry_points if ep.group == "console_scripts"]
    return sorted(found, key=lambda c: c.name)


def parser_of(command: Command) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = importlib.import_module(command.module).build_parser()
    return parser


def escape(text: str) -> str:
    """Roff-safe text: backslashes, minus signs (so options copy and paste), control lines."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in text.splitlines())


def _bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def _arguments(action: argparse.Action) -> str:
    meta = _italic(_metavar(action))
    nargs = action.nargs
    if nargs == 0:
        return ""
    if nargs == "?":
        return f"[{meta}]"
    if nargs == "*":
        return f"[{meta} ...]"
    if nargs == "+":
        return f"{meta} [{meta} ...]"
    if isinstance(nargs, int):
        return " ".join([meta] * nargs)
    return meta


def invocation(action: argparse.Action) -> str:
    """``--config PATH`` as roff: what ``--help`` shows in front of the help line."""
    if not action.option_strings:
        return _arguments(action)
    args = _arguments(action)
    return ", ".join(_bold(o) + (f" {args}" if args else "") for o in action.option_strings)


def help_text(action: argparse.Action, prog: str) -> str:
    """The help line with ``%(default)s`` and friends expanded, as argparse does."""
    if not action.help:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return action.help % params


def _groups(parser: argparse.ArgumentParser) -> Iterable[tuple[str, list[argparse.Action]]]:
    for group in parser._action_groups:
        shown = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if shown:
            yield group.title or "", shown


def _paragraphs(text: str) -> list[str]:
    """Blank lines separate paragraphs; single newlines inside one are reflowed by roff."""
    return [escape(" ".join(p.split())) for p in text.split("\n\n") if p.strip()]


def _exit_status(name: str) -> list[tuple[int, str]]:
    if name == "wgkill-status":
        return list(STATUS_CODES)
    codes = [(0, "success."), (1, "an internal error (a bug: WGKILL_DEBUG=1 shows the traceback).")]
    if name == "wgkill-exclude":
        codes[0] = (0, "success (--pid); with COMMAND, its own exit code, whatever it is.")
    kinds = [c for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, errors.WgkillError) and c is not errors.WgkillError
             and (name == "wgkill-exclude" or not issubclass(c, errors.ExecError))]
    return codes + sorted((c.exit_code, (c.__doc__ or "").strip()) for c in kinds)


def render(command: Command, others: Sequence[str], date: str) -> str:
    """The whole page for one command, in the man(7) macros."""
    parser = parser_of(command)
    prog = command.name
    description = parser.description or ""
    summary = " ".join(description.split())
    if summary[:1].isupper() and summary[1:2].islower():  # "Block every..." -> "block every...", not "IFACE"
        summary = summary[0].lower() + summary[1:]
    usage = parser.format_usage().removeprefix("usage: ").removeprefix(prog).strip()
    out = [
        f'.TH "{prog.upper()}" "{SECTION}" "{date}" "wgkill {__version__}" "System Administration"',
        ".SH NAME",
        f"{escape(prog)} \\- {escape(summary.rstrip('.'))}",
        ".SH SYNOPSIS",
        ".nh",
        ".ad l",
        f"{_bold(prog)} {escape(' '.join(usage.split()))}",
        ".ad",
        ".hy",
        ".SH DESCRIPTION",
    ]
    for paragraph in _paragraphs(description):
        out += [paragraph, ".PP"]
    out.pop()
    out.append(".SH OPTIONS")
    for title, actions in _groups(parser):
        out.append(f".SS {escape(title[0].upper() + title[1:])}")
        for action in actions:
            out += [".TP", invocation(action)]
            text = help_text(action, prog)
            out.append(escape(" ".join(text.split())) if text else ".")
    if parser.epilog:
        out.append(".SH NOTES")
        for paragraph in _paragraphs(parser.epilog):
            out += [paragraph, ".PP"]
        out.pop()
    out += [".SH EXIT STATUS"]
    for code, meaning in _exit_status(prog):
        out += [".TP", f"\\fB{code}\\fR", escape(meaning)]
    out += [".SH ENVIRONMENT"]
    for name, meaning in ENVIRONMENT:
        out += [".TP", _bold(name), escape(meaning)]
    out += [".SH FILES"]
    for path, meaning in FILES:
        out += [".TP", _italic(path), escape(meaning)]
    out += [".SH EXAMPLES", "In the [Interface] section of a wg\\-quick config:", ".PP", ".nf", ".RS",
            escape(HOOKS), ".RE", ".fi"]
    see = [f"\\fB{escape(o)}\\fR({SECTION})" for o in others if o != prog]
    see += ["\\fBwg\\-quick\\fR(8)", "\\fBwg\\fR(8)"]
    out += [".SH SEE ALSO", ",\n".join(see)]
    return "\n".join(out) + "\n"


def build_date() -> str:
    """SOURCE_DATE_EPOCH when a package build sets it (reproducible pages), else today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch
            else datetime.datetime.now(datetime.UTC))
    return when.strftime("%Y-%m-%d")


def write_all(directory: Path) -> list[Path]:
    """Write ``NAME.8`` for every command into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    found = commands()
    names = [c.name for c in found]
    date = build_date()
    written = []
    for command in found:
        path = directory / f"{command.name}.{SECTION}"
        path.write_text(render(command, names, date), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m wgkill.cli.manpage",
                                     description="Write a section 8 page for every wgkill command.")
    parser.add_argument("directory", type=Path, help="where NAME.8 files go (created if missing)")
    args = parser.parse_args(argv)
    for path in write_all(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
