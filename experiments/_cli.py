import argparse
from collections.abc import Callable


def run(main: Callable, doc: str, out_dir: str) -> None:
    """The command line shared by every experiment: `--seed`, `--out-dir`, `--smoke`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=out_dir)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    main(seed=args.seed, out_dir=args.out_dir, smoke=args.smoke)
