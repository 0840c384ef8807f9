"""Training throughput per kind: the fast settings against plain fp32 eager, side by side.

  python bench/bench_train.py [--data runs/prepared-256.npz] [--steps 60] [--kinds aae,pix2pix]
                              [--quality-steps 0]

Each mode runs the real training loop (train.py's code, shipped model sizes, 256 px) on the
same data and seed, one after the other, twice in alternation (plain, fast, bf16, plain, ...),
so that drifts of a shared machine hit every mode alike. Images/second comes from the loop's own
stats.jsonl rows (after the first logged row, so start-up and the first steps' allocations
are out), the better of the two rounds. Modes:
  plain: fp32, contiguous (NCHW) tensors, for-loop optimisers: PyTorch's eager defaults;
  fast:  channels_last activations, multi-tensor (foreach) optimisers, fp32;
  bf16:  fast plus bf16 autocast of the step: the training defaults on hardware with bf16
         units (CPUs with AMX / AVX512-BF16, CUDA GPUs; retinagan.training.common.bf16_units).
With --quality-steps N > 0, the --quality-modes (default plain and bf16) also train N steps each
and the held-out metric is printed for each (same seed, same data: the fast path must not cost
quality).
Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = {
    "plain": dict(channels_last=False, foreach=False, bf16=False),
    "fast": dict(channels_last=True, foreach=True, bf16=False),
    "bf16": dict(channels_last=True, foreach=True, bf16=True),
}


def run(kind: str, mode: str, data: str, steps: int, out: Path, log_every: int) -> dict:
    from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
    from retinagan.training.pix2pix import Pix2PixTrainConfig, train_pix2pix

    common = dict(data=data, output=str(out), steps=steps, log_every=log_every, sample_every=10**9, state_every=10**9,
                  resume=False, device="cpu", **MODES[mode])
    if kind == "pix2pix":
        folder, batch = train_pix2pix(Pix2PixTrainConfig(**common)), Pix2PixTrainConfig().batch_size
        metric = "holdout_l1"
    else:
        variant = "vae" if kind == "vae" else "aae"
        folder = train_autoencoder(AutoencoderTrainConfig(variant=variant, dual=kind == "aae-dual", **common))
        batch, metric = AutoencoderTrainConfig().batch_size, "holdout_reconstruction_dice"
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    timed = [r for r in rows if "seconds" in r]
    first, last = timed[0], timed[-1]
    images = (last["step"] - first["step"]) * batch
    config = json.loads((folder / "config.json").read_text())
    loss_key = "l1" if kind == "pix2pix" else "recon"
    return {
        "images_per_s": images / max(last["seconds"] - first["seconds"], 1e-9),
        "final_loss": sum(r[loss_key] for r in timed[-3:]) / len(timed[-3:]),
        metric: config["metrics"][metric],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="runs/prepared-256.npz", help="prepared set (python -m retinagan prepare)")
    parser.add_argument("--steps", type=int, default=60, help="steps per timed run")
    parser.add_argument("--kinds", default="aae,pix2pix", help="comma-separated: aae, aae-dual, vae, pix2pix")
    parser.add_argument("--modes", default="plain,fast,bf16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quality-steps", type=int, default=0, help="also train the --quality-modes this long and compare")
    parser.add_argument("--quality-modes", default="plain,bf16")
    args = parser.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"no prepared set at {args.data}: python -m retinagan prepare --data DIR ... --output {args.data}")
    import torch

    from retinagan.training.common import bf16_units

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 units: {bf16_units()}")
    kinds, modes = args.kinds.split(","), args.modes.split(",")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for round_ in range(args.rounds):
                for mode in modes:
                    result = run(kind, mode, args.data, args.steps, Path(tmp) / f"{kind}-{mode}-{round_}", max(5, args.steps // 6))
                    best = results.setdefault((kind, mode), result)
                    best["images_per_s"] = max(best["images_per_s"], result["images_per_s"])
                    print(f"  {kind} {mode} round {round_ + 1}: {result['images_per_s']:.2f} images/s", flush=True)
        quality = {}
        for kind in kinds if args.quality_steps else []:
            for mode in args.quality_modes.split(","):
                quality[(kind, mode)] = run(kind, mode, args.data, args.quality_steps, Path(tmp) / f"q-{kind}-{mode}", 25)
    print(f"\n{'kind':10} {'mode':6} {'images/s':>9} {'vs plain':>9}")
    for kind in kinds:
        base = results[(kind, modes[0])]["images_per_s"]
        for mode in modes:
            speed = results[(kind, mode)]["images_per_s"]
            print(f"{kind:10} {mode:6} {speed:9.2f} {speed / base:8.2f}x")
    if quality:
        print(f"\nshort-run quality ({args.quality_steps} steps, same seed and data)")
        for (kind, mode), result in quality.items():
            metric = {k: round(v, 4) for k, v in result.items() if k != "images_per_s"}
            print(f"{kind:10} {mode:6} {metric}")


if __name__ == "__main__":
    main()
