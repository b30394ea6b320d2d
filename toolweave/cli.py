"""`toolweave` command line: one subcommand per stage, plus `run` (a chain), `serve` and `toolset`."""
from __future__ import annotations

import argparse
import sys

from toolweave.config import STAGES


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML run config (see configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. solve.width=3")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolweave", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # toolset: importers (issue 2)
    ts = sub.add_parser("toolset", help="import tool catalogues into a toolset dataset")
    ts_sub = ts.add_subparsers(dest="toolset_command", required=True)
    imp = ts_sub.add_parser("import", help="import tool files (ToolAlpaca, OpenAPI, ToolBench, OpenAI tools)")
    imp.add_argument("paths", nargs="+")
    imp.add_argument("--out", required=True, help="output dataset directory (Parquet)")

    run = sub.add_parser("run", help="run the chain of stages a config lists")
    _add_config_args(run)
    for stage in STAGES:
        p = sub.add_parser(stage.replace("_", "-"), help=f"run the {stage} stage")
        _add_config_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "toolset" and args.toolset_command == "import":
        from toolweave.toolsets.command import import_command
        return import_command(args.paths, args.out)
    # stages run through the Ray jobs (they are the only places that import Ray)
    from ray_jobs.launch import run_from_cli
    return run_from_cli(args.command.replace("-", "_"), args.config, args.overrides)


if __name__ == "__main__":
    sys.exit(main())
