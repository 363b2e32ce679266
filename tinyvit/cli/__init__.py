"""The `tinyvit` command line: one subcommand per job (see `tinyvit --help`).

One error path for every subcommand (``main``): an expected failure -- any tinyvit typed
error, a config ``ValueError``, a missing or unreadable file -- prints one line
``tinyvit <command>: error: <what>`` to stderr and exits 2; anything else is a bug: one line
``tinyvit <command>: internal error: ... please report`` and exit 70 (EX_SOFTWARE), never 1
(findings). ``--traceback`` (or ``TINYVIT_TRACEBACK=1``) re-raises either with the full trace
instead. Ctrl-C exits 130 with one
line (records and checkpoints already written stay valid: both are written atomically).
Exit codes: docs/cli.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
# An error no input should cause (a bug): BSD sysexits' EX_SOFTWARE, distinct from 1 (findings)
# and 2 (bad input), so scripts never read a crash as "the store has findings".
EXIT_INTERNAL = 70


from ..errors import CLIError  # noqa: E402  (defined with every error in tinyvit.errors)


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors as the same one line as every other error (exit 2)."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _expected_errors() -> tuple:
    from ..augment.replay import ImageDecodeError
    from ..data.datasets import DatasetError
    from ..jobs.models import ModelError, TeacherOutputError
    from ..store import StoreError

    # ValueError: AugConfig / RandAugment-string / JSON checks; OSError: missing files, disk full
    return (CLIError, StoreError, DatasetError, ModelError, TeacherOutputError, ImageDecodeError,
            ValueError, OSError, FloatingPointError)


def _cmd_info(args) -> int:
    from .._ext import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def _cmd_demo(args) -> int:
    from ..jobs.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinyvit",
        description="Fast pretraining distillation (TinyViT): save a teacher's sparse top-K "
        "logits once with replayable augmentation seeds, then train students from them "
        "without the teacher.",
        epilog="exit status: 0 ok; 1 findings (inspect/verify) or an incomplete store "
        "(save-logits); 2 error (one line; --traceback for the trace); 3 contract target not "
        "met; 70 internal error (a bug: please report); 130 interrupted. Reference: docs/cli.md",
    )
    parser.add_argument("--traceback", action="store_true", default=False,
                        help="show the full Python trace of an error (also: TINYVIT_TRACEBACK=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="show how the compiled core was built (CUDA, archs, libjpeg)",
                       description="Print, as JSON, how the compiled core was built: CUDA or not, "
                       "the CUDA archs, the libjpeg(-turbo) version, the SIMD level and the torch "
                       "version it was compiled against.")
    p.set_defaults(func=_cmd_info)

    from .options import HelpFormatter
    from .store import add_store_parsers

    add_store_parsers(sub)

    from .show import add_show_parser

    add_show_parser(sub)

    p = sub.add_parser(
        "demo",
        help="the whole job end to end on Fashion-MNIST: teacher, save-logits, students (~3 min)",
        description="Train a teacher briefly, save its top-K on every augmented (epoch, sample), "
        "then train the same student from the store, on hard labels and with an online teacher, "
        "over several seeds; print mean +- std and write results.json and demo.png into --out.",
        formatter_class=HelpFormatter)
    from .demo import add_demo_arguments

    add_demo_arguments(p)
    p.set_defaults(func=_cmd_demo)

    from .save_logits import add_save_logits_parser
    from .train import add_train_parser

    add_save_logits_parser(sub)
    add_train_parser(sub)

    from .contract import add_contract_parser

    add_contract_parser(sub)
    for p in sub.choices.values():  # `tinyvit CMD ... --traceback` works too
        p.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                       help="show the full Python trace of an error (also: TINYVIT_TRACEBACK=1)")
    parser.commands = dict(sub.choices)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the subcommand in the message, like every other error
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    show_trace = args.traceback or os.environ.get("TINYVIT_TRACEBACK", "") not in ("", "0")
    prog = f"tinyvit {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if show_trace:
            raise
        print(f"{prog}: interrupted (what was already written is kept: rerun to resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except _expected_errors() as exc:
        if show_trace:
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - a bug: one line, a distinct code, the trace on request
        if show_trace:
            raise
        msg = " ".join(str(exc).split())[:500] or "(no message)"
        print(f"{prog}: internal error: {type(exc).__name__}: {msg} -- this is a bug in tinyvit, "
              f"please report it with the output of the same command with --traceback", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    from ..store import StoreError

    msg = " ".join(str(exc).split()) or type(exc).__name__
    # tinyvit's own errors say what failed; name the type of anything else
    if isinstance(exc, (CLIError, StoreError)) or type(exc).__module__.startswith("tinyvit"):
        return msg
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename!r}"
    return f"{type(exc).__name__}: {msg}"

