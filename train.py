"""`python train.py KIND ...` is `python -m retinagan train KIND ...`."""
import sys

from retinagan.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
