"""wgkill-exclude: run one program (or move one process) outside the tunnel and its block."""

import argparse
import sys
from collections.abc import Sequence

from ..errors import UsageError
from . import entry, say
from .args import Parser

PROG = "wgkill-exclude"


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        usage=f"{PROG} [--user USER] -- COMMAND [ARGS...]\n       {PROG} --pid PID",
        description="Run COMMAND in wgkill's exclusion cgroup: its traffic leaves by the uplink, around "
                    "the tunnel and its kill switch, while everything else stays held (needs a tunnel "
                    "protected with wgkill-up --allow-exclude, and cgroup v2). Exits with COMMAND's exit "
                    "code; 126/127 when it cannot be run. Each exclusion is logged as one line on stderr "
                    "and in STATE_DIR/exclude.log.",
    )
    parser.add_argument("--user", metavar="USER",
                        help="run COMMAND as USER (name or uid), like runuser: its groups, gid and uid; "
                             "the environment is HOME, USER, LOGNAME, SHELL of USER, a fixed PATH, and "
                             "TERM and LANG if set (default: root, the same minimal environment)")
    parser.add_argument("--pid", metavar="PID", type=int,
                        help="move running process PID instead: children it starts later are excluded, "
                             "its open sockets (connections) are not, they stay in the tunnel")
    parser.add_argument("command", metavar="COMMAND", nargs=argparse.REMAINDER,
                        help="the program and its arguments, after --")
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    from ..exclude import launch

    if args.pid is not None:
        if command or args.user:
            raise UsageError("--pid moves a running process: no COMMAND and no --user with it")
        say(PROG, launch.exclude_pid(args.pid))
        return 0
    program, who, env, line = launch.prepare(command, args.user)
    say(PROG, line)
    sys.stdout.flush()
    sys.stderr.flush()
    launch.become_and_exec(program, command, who, env)


main = entry(PROG, run)
