"""`python -m basisbot.live {live,paper} --config F [--env-file F]` (until cli.py wires `basisbot live/paper`)."""

import argparse
import sys

from basisbot.live.node import live_main, paper_main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m basisbot.live")
    p.add_argument("mode", choices=("live", "paper"))
    p.add_argument("--config", required=True)
    p.add_argument("--env-file", default=".env")
    args = p.parse_args(argv)
    return live_main(args) if args.mode == "live" else paper_main(args)


if __name__ == "__main__":
    sys.exit(main())
