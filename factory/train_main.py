"""`python -m factory.train_main recipe=NAME [key=value ...] [--no-resume]`: the entry point
that `accelerate launch` runs on every process of a multi-GPU job, e.g.

    accelerate launch --config_file recipes/accelerate/zero3.yaml -m factory.train_main \\
        recipe=distill-7b train.datasets='[{path: datasets/r1-mix}]'

On one machine `factory train recipe=NAME` does the same (cli.py calls `factory.train.train`).
"""

from __future__ import annotations

import json
import logging
import sys

from factory.errors import FactoryError


def main(argv: list[str] | None = None) -> int:
    from factory.train import train
    from factory.train_recipe import load_train_recipe

    args = list(sys.argv[1:] if argv is None else argv)
    resume = "--no-resume" not in args
    args = [a for a in args if a != "--no-resume"]
    names = [a.partition("=")[2] for a in args if a.startswith("recipe=")]
    if len(names) != 1:
        print("usage: python -m factory.train_main recipe=NAME [key=value ...]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        recipe = load_train_recipe(names[0], [a for a in args if not a.startswith("recipe=")])
        summary = train(recipe, resume=resume)
    except FactoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
