"""A line-preserving editor for wg-quick configs: hook lines change, nothing else does.

Lines come from ``wgconf.read_lines``, the one reader of the format (split at
``\n`` only, as wg-quick reads them; a line wg-quick or ``wg`` would refuse is a
ConfigError), and every line keeps its exact text, line ending included, so
comments, blank lines, key order, spelling and peers survive byte for byte.

Hook lines are recognised by what they run: ``wgkill-up`` / ``wgkill-down``
(ours, replaced) and the hand-written iptables kill switch of the article and
of provider guides (``iptables -I OUTPUT ! -o %i ... -j REJECT``, also joined
with ``&&``), replaced too. A line that mixes such a rule with other commands
is refused: we cannot remove half a shell line safely, and replacing only its
partner (say, the PreDown that deletes the rule) would leave a block that no
clean ``wg-quick down`` ever lifts.
"""

import itertools
import os
import re
import shlex

from .errors import ConfigError
from .recordclass import dataclass
from .wgconf import BLANKS, Line, place, read_lines

HOOK_KEYS = frozenset({"preup", "postup", "predown", "postdown"})
BLOCK_MARK = "# wgkill:"
_IPTABLES = re.compile(r"ip6?tables(-legacy|-nft)?")
_SEPARATORS = frozenset({"&&", "||", ";", "&", "|", ";;"})
_OURS = frozenset({"wgkill-up", "wgkill-down"})


def _commands(value: str) -> list[list[str]] | None:
    """The simple commands of a hook line, or None if the shell text cannot be tokenised."""
    lexer = shlex.shlex(value, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _follows(tokens: list[str], first: set[str], second: set[str]) -> bool:
    return any(a in first and b in second for a, b in itertools.pairwise(tokens))


def is_handwritten_killswitch(tokens: list[str]) -> bool:
    """The article's rule: an iptables insert/append/delete on OUTPUT, ``! -o IFACE``, REJECT or DROP."""
    if not tokens or not _IPTABLES.fullmatch(os.path.basename(tokens[0])):
        return False
    negated_out = any(
        tokens[i] == "!" and tokens[i + 1] in {"-o", "--out-interface"}
        for i in range(len(tokens) - 2)
    )
    return (
        _follows(tokens, {"-I", "-A", "-D", "--insert", "--append", "--delete"}, {"OUTPUT"})
        and negated_out
        and _follows(tokens, {"-j", "--jump"}, {"REJECT", "DROP"})
    )


def is_wgkill_hook(tokens: list[str]) -> bool:
    return bool(tokens) and os.path.basename(tokens[0]) in _OURS


def runs_wgkill(value: str) -> bool:
    """A hook value whose first command is ``wgkill-up`` or ``wgkill-down``."""
    return is_wgkill_hook((_commands(value) or [[]])[0])


def classify_hook(value: str) -> str | None:
    """``"replace"`` (wgkill or a hand-written kill switch, nothing else), ``"mixed"`` or None."""
    commands = _commands(value)
    if not commands:
        return None
    ours = [is_wgkill_hook(c) or is_handwritten_killswitch(c) for c in commands]
    if all(ours):
        return "replace"
    return "mixed" if any(ours) else None


@dataclass(frozen=True)
class HookEdit:
    """The result of :func:`replace_hooks`: the new text and the lines it replaced."""

    text: str
    removed: tuple[Line, ...]


def _block_comment_start(lines: list[Line], hook: Line) -> int | None:
    """Index of our ``# wgkill:`` comment block directly above ``hook``, if there is one."""
    start = None
    index = hook.index - 1
    while index >= 0 and lines[index].is_comment:
        if lines[index].text.lstrip(BLANKS).startswith(BLOCK_MARK):
            start = index
            break
        index -= 1
    return start


def newline_of(lines: list[Line]) -> str:
    """The file's own line ending (the first line's), so inserted lines match it."""
    for line in lines:
        if line.ending:
            return line.ending
    return "\n"


def replace_hooks(text: str, block: str, path: str = "<config>") -> HookEdit:
    """Return ``text`` with wgkill's ``block`` in place of every kill-switch hook line.

    The block goes where the first replaced line was, or after the last
    ``Key = value`` line of the first [Interface] section. Applying it twice
    gives the same text as applying it once.
    """
    lines = read_lines(text, path)
    interface = [ln for ln in lines if ln.section == "[interface]"]
    if not interface:
        raise ConfigError(
            f"{place(path)}: no [Interface] section"
            + (" (the file is empty: if the shell truncated it with `> same file`, "
               "restore it and use --in-place)" if not text.strip(BLANKS) else "")
        )
    if interface[0].key_text.lower() != "[interface]":
        # wg reads "[ Interface ]" as the header, wg-quick does not: it would hand our hooks to wg.
        raise ConfigError(f"{place(path, interface[0].number)}: write this header as [Interface] "
                          f"(not {interface[0].key_text!r}): wg-quick reads its hook keys only after that")
    drop: set[int] = set()
    removed = []
    for line in interface:
        if line.key not in HOOK_KEYS:
            continue
        kind = classify_hook(line.value)
        if kind == "replace":
            drop.add(line.index)
            removed.append(line)
            start = _block_comment_start(lines, line) if runs_wgkill(line.value) else None
            if start is not None:
                drop.update(range(start, line.index))
        elif kind == "mixed":
            raise ConfigError(
                f"{place(path, line.number)}: this {line.key_text} line mixes a kill-switch rule with other "
                "commands; move the other commands to a line of their own, then run again"
            )
    newline = newline_of(lines)
    out_block = block.replace("\n", newline)
    if drop:
        at = min(drop)
    else:
        header = interface[0].index
        following = next((ln.index for ln in lines[header + 1:] if ln.is_header), len(lines))
        keyed = [ln.index for ln in lines[header:following] if ln.key is not None]
        at = (keyed[-1] if keyed else header) + 1
    pieces = [ln.text for ln in lines]
    if at > 0 and not pieces[at - 1].endswith("\n"):
        # the file ended without a newline right where we append (a CRLF file's last CR is kept)
        pieces[at - 1] += "\n" if newline == "\r\n" and pieces[at - 1].endswith("\r") else newline
    result = [p for i, p in enumerate(pieces[:at]) if i not in drop]
    result.append(out_block)
    result.extend(p for i, p in enumerate(pieces[at:], start=at) if i not in drop)
    return HookEdit("".join(result), tuple(removed))


def with_value(line: Line, value: str) -> str:
    """``line`` with its value replaced; key spelling, spacing, inline comment and ending kept."""
    body = line.text[: len(line.text) - len(line.ending)]
    code, mark, comment = body.partition("#")
    key, equals, old = code.partition("=")
    lead = old[: len(old) - len(old.lstrip(BLANKS))]
    trail = old[len(old.rstrip(BLANKS)):] if old.strip(BLANKS) else ""
    return f"{key}{equals}{lead}{value}{trail}{mark}{comment}{line.ending}"


def rewrite(lines: list[Line], replacements: dict[int, list[str]]) -> str:
    """Join ``lines`` back, each index in ``replacements`` replaced by its list of texts."""
    return "".join(
        "".join(replacements[ln.index]) if ln.index in replacements else ln.text for ln in lines
    )


def peer_values(lines: list[Line], key: str) -> list[Line]:
    """Every ``key`` line of every [Peer] section, in file order."""
    return [ln for ln in lines if ln.section == "[peer]" and ln.key == key]
