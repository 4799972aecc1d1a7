"""``hearth definition check FILE…``: load device definitions as the gateway would, and say what is wrong.

The definitions format belongs to the ``definitions`` adapter; this reaches it through its entry point (as
the gateway does), never by importing it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.errors import ConfigError


def run(args: argparse.Namespace) -> int:
    from gateway.supervisor import LOAD_PROBLEMS, discover_adapters

    classes = discover_adapters(lambda name: name == "definitions")
    cls = classes.get("definitions")
    check = getattr(cls, "check_files", None)
    if check is None:
        why = LOAD_PROBLEMS.get("definitions", "it is not installed")
        print(f"hearth definition check: the definitions adapter is not available ({why})", file=sys.stderr)
        return 2
    paths = [Path(f) for f in args.files]
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        print(f"hearth definition check: no such file or folder: {path}", file=sys.stderr)
    if missing:
        return 2
    names, problems = check(paths)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.file, p.line or 0)))
    print(f"ok: {len(names)} definition{'s' if len(names) != 1 else ''} ({', '.join(names)})")
    return 0
