"""The ``xtl`` command line."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    print(
        "xtl demo: the embedded toy model is not yet available (it lands with the "
        "toy-world issue). Meanwhile, load any supported checkpoint with "
        "xtl.load_model(...) and call xtl.transplant(...).",
        file=sys.stderr,
    )
    return 2


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xtl`` command."""
    p = argparse.ArgumentParser(
        prog="xtl",
        description="Cross-lingual latent transplantation (XTransplant) on TransformerLens models.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the main job on the embedded toy model")
    demo.add_argument("--out", default="xtl-demo", help="output directory (default: %(default)s)")
    demo.set_defaults(func=_demo)
    return p


def _version() -> str:
    from xtl import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xtl`` console script."""
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
