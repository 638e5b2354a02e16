"""The ``stylenorm`` command: one subcommand per job, each registered by the module that owns it."""

from __future__ import annotations

import argparse
import importlib
import sys

from stylenorm import __version__, logs
from stylenorm.errors import StylenormError
from stylenorm.norm import available_norms

# module -> it defines add_parser(subparsers), registering subcommands with set_defaults(func=...)
_SUBCOMMAND_MODULES = (
    "stylenorm.train.cli",         # stylenorm train <recipe>
    "stylenorm.cli.stylize",       # stylenorm stylize, stylenorm models
    "stylenorm.cli.interop",       # stylenorm import …, stylenorm export …
    "stylenorm.cli.synthesize",    # stylenorm synthesize, stylenorm generate
    "stylenorm.evaluation.sheet",  # stylenorm sheet (contact sheets with quality numbers)
    "stylenorm.server.cli",        # stylenorm serve
)


def _norms(args: argparse.Namespace) -> int:
    usages = available_norms()
    width = max(map(len, usages))
    for usage, summary in usages.items():
        print(f"{usage:<{width}}  {summary}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from stylenorm.demo import main as demo_main

    demo_main(["--out", args.out])
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every available subcommand."""
    parser = argparse.ArgumentParser(prog="stylenorm", description="normalization layers and generators")
    parser.add_argument("--version", action="version", version=f"stylenorm {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug); default: info"
    )
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output (-qq: errors only)")
    parser.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=None,
        help=f"log lines as text or one JSON object each (default: ${logs.FORMAT_ENV} or text)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("norms", help="list every norm spec make_norm understands").set_defaults(func=_norms)
    demo = sub.add_parser("demo", help="write a one-picture tour of the library")
    demo.add_argument("--out", default="demo.png")
    demo.set_defaults(func=_demo)
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in (name, name.split(".")[0]):
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; a StylenormError becomes a one-line message and exit status 2.

    Logging goes to stderr at info (``$STYLENORM_LOG_LEVEL`` changes the base, each -v/-q one step),
    as text or JSON (``--log-format``, ``$STYLENORM_LOG_FORMAT``).
    """
    args = build_parser().parse_args(argv)
    try:
        logs.configure(logs.level_from(args.verbose, args.quiet), logs.format_from(args.log_format))
        return int(args.func(args) or 0)
    except StylenormError as exc:
        print(f"stylenorm {args.command}: error: {exc}", file=sys.stderr)
        return 2

