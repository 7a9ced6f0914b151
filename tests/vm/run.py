#!/usr/bin/env python3
"""Run a command inside the berth test VM (real Debian kernel with device-mapper).

    python tests/vm/run.py [--memory 2048] [--timeout 1500] [--cwd DIR] [--cpus 1] [-e NAME=VALUE]
                           -- COMMAND [ARGS...]

Streams the command's output and exits with its exit code; 124 if the VM timed out, 125 if
the VM failed (message on stderr). See tests/vm/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import EXIT_TIMEOUT, EXIT_VM_ERROR, VMError, VMTimeout, run_in_vm


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options before ``--``; everything after it is the guest command, verbatim."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory", type=int, default=2048, help="guest RAM in MB (default 2048)")
    parser.add_argument(
        "--timeout", type=float, default=1500, help="kill the VM after N seconds (default 1500)"
    )
    parser.add_argument(
        "--cpus", type=int, default=1, help="guest vCPUs (default 1: boots fastest)"
    )
    parser.add_argument(
        "--cwd", default=os.getcwd(), help="working directory in the guest (default: current)"
    )
    parser.add_argument(
        "-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="extra env var"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("missing COMMAND (after --)")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    env = dict(item.split("=", 1) for item in args.env)
    try:
        result = run_in_vm(
            args.command,
            cwd=args.cwd,
            memory_mb=args.memory,
            timeout=args.timeout,
            env=env,
            cpus=args.cpus,
            stream=sys.stdout.buffer,
        )
    except VMTimeout as exc:
        print(f"berth-vm: {exc}", file=sys.stderr)
        if exc.console:
            print(f"guest console (last lines):\n{exc.console}", file=sys.stderr)
        return EXIT_TIMEOUT
    except VMError as exc:
        print(f"berth-vm: {exc}", file=sys.stderr)
        return EXIT_VM_ERROR
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
