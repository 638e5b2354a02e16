"""The ``stylenorm`` command."""

from __future__ import annotations

import argparse
import sys

from stylenorm.norm import available_norms


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``stylenorm norms`` lists the norm specs; ``stylenorm demo`` writes a picture."""
    parser = argparse.ArgumentParser(prog="stylenorm", description="normalization layers and generators")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("norms", help="list every norm spec make_norm understands")
    demo = sub.add_parser("demo", help="write a one-picture tour of the library")
    demo.add_argument("--out", default="demo.png")
    args = parser.parse_args(argv)
    if args.command == "norms":
        usages = available_norms()
        width = max(map(len, usages))
        for usage, summary in usages.items():
            print(f"{usage:<{width}}  {summary}")
        return 0
    from stylenorm.demo import main as demo_main

    demo_main(["--out", args.out])
    return 0


if __name__ == "__main__":
    sys.exit(main())
