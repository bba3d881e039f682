"""morph: choose an inference-efficient model shape; one subcommand per workflow stage.

Stage modules are imported lazily, so `morph --help` and light stages do not pay for torch.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from morph.core.artifacts.common import PARAMS, PARAMS_FLAG
from morph.core.errors import MorphError
from morph.core.io import reading_params
from morph.workflow import pipeline
from morph.workflow.commands import COMMANDS, INTERFACES


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="morph", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see `morph {name} --help`)")
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # a stage not built in this checkout
        p = sub.add_parser(name, help=module.__doc__.strip().split("\n")[0], description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        flag = getattr(module, "PARAMS_FLAG", {"default": PARAMS, "help": "experiment file (default: %(default)s)"})
        if flag is not None:  # a module's PARAMS_FLAG changes the flag's default, or (None) drops it
            p.add_argument(PARAMS_FLAG, **flag)
        # A stage's flags are its interface's, the ones its node passes; a tool declares its own.
        (INTERFACES[name] if name in INTERFACES else module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def stage_params(args) -> dict | None:
    """The params a stage command reads, as its records' provenance states them (see io.reading_params)."""
    reads = pipeline.reads_of(args.command)
    if not reads:
        return None
    from morph.core import experiment

    return pipeline.params_read(experiment.load(args.params), reads)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the chosen stage's module; listing all of them is for `morph --help`.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        if "DVC_STAGE" in os.environ and getattr(args, "params", None):
            from morph.core import experiment
            from morph.workflow import preflight
            from morph.workflow.dvc_yaml import refuse_if_stale

            # The stage's own folder, where its dvc.yaml is: a queued experiment runs in a copy of the tree, while
            # DVC_ROOT still names the tree it was queued from.
            refuse_if_stale(args.params, os.getcwd())
            preflight.check(experiment.load(args.params), args.params)
        with reading_params(stage_params(args)):
            return args._module.run(args) or 0
    except MorphError as err:
        print(f"morph {args.command}: error: {err}", file=sys.stderr)
        return 2
    # What a stage did not foresee still names the file, never a traceback.
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"morph {args.command}: error: {where}{err.strerror or err}; check the path (a file where a file "
              "belongs, readable, space on its disk) and rerun", file=sys.stderr)
        return 2
    except UnicodeError as err:
        print(f"morph {args.command}: error: an input is not UTF-8 text ({err}); save it as UTF-8 and rerun",
              file=sys.stderr)
        return 2
    except RecursionError:
        print(f"morph {args.command}: error: an input is nested too deeply to read (a damaged JSON file?); "
              "check the files this command reads", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
