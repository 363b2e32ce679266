"""The `tinyvit` command line: one subcommand per job (see `tinyvit --help`)."""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args) -> int:
    from .. import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def _cmd_demo(args) -> int:
    from ..jobs.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyvit",
        description="Fast pretraining distillation (TinyViT): save a teacher's sparse top-K "
        "logits once with replayable augmentation seeds, then train students from them "
        "without the teacher.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="show how the compiled core was built (CUDA, archs, libjpeg)")
    p.set_defaults(func=_cmd_info)

    from .store import add_store_parsers

    add_store_parsers(sub)

    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded default data",
        description="Exercise the pipeline end to end on built-in data and print what happened.",
    )
    from .demo import add_demo_arguments

    add_demo_arguments(p)
    p.set_defaults(func=_cmd_demo)

    from .save_logits import add_save_logits_parser
    from .train import add_train_parser

    add_save_logits_parser(sub)
    add_train_parser(sub)

    from .contract import add_contract_parser

    add_contract_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
