"""`make lint`: no function in wgkill/ above cyclomatic complexity 30, at most five above 20.

Reads ``radon cc -j wgkill`` on stdin; prints the functions above 20, exits 1 past either limit.
"""

import json
import sys

CEILING, HIGH, MOST_HIGH = 30, 20, 5


def _qualified(block: dict[str, object]) -> str:
    owner = block.get("classname")
    return f"{owner}.{block['name']}" if owner else str(block["name"])


def main() -> int:
    blocks = [
        (block["complexity"], f"{path}:{block['lineno']} {_qualified(block)}")
        for path, found in json.load(sys.stdin).items() if isinstance(found, list)
        for block in found if block["type"] in ("function", "method")
    ]
    high = sorted((b for b in blocks if b[0] > HIGH), reverse=True)
    for complexity, where in high:
        print(f"complexity {complexity}: {where}")
    if any(complexity > CEILING for complexity, _ in high) or len(high) > MOST_HIGH:
        print(f"too complex: no function may exceed {CEILING}, at most {MOST_HIGH} may exceed {HIGH}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
