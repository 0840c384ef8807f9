"""Time `prepare` (photos -> cache) and loading the cache.

python bench/bench_prepare.py [--data ../shared/data] [--size 256]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.cli import DEFAULT_SEGMENTER  # noqa: E402
from retinagan.data.readers import read_dataset  # noqa: E402
from retinagan.inference import Segmenter  # noqa: E402
from retinagan.pipeline import load_prepared, prepare, save_prepared  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    root = Path(args.data)
    samples = read_dataset(root / "drive" / "training") + read_dataset(root / "eyepacs") + read_dataset(root / "idrid")
    segmenter = Segmenter.load(DEFAULT_SEGMENTER)
    start = time.perf_counter()
    prepared, failures = prepare(samples, segmenter, args.size)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = save_prepared(prepared, Path(tmp) / "set.npz")
        size_mb = path.stat().st_size / 1e6
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            load_prepared(path)
            loads.append(time.perf_counter() - t)
    print(f"prepare: {len(prepared)} samples ({len(failures)} failed) in {seconds:.1f} s = {seconds / len(prepared):.2f} s/sample")
    print(f"cache: {size_mb:.1f} MB; load (median of 5): {sorted(loads)[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
