"""Research script: a conditional diffusion model that draws a hand-drawn-like vessel tree
(fine vessels included) over a vessel model's coarse output (issue 3: morphology).

Training pairs: DRIVE training's 20 hand-drawn maps, rotated and flipped at native size and then
prepared at 256 px like every reference map (so their fine vessels break up as DRIVE test's do),
each paired with the vessel model's decoding of its encoder code (the coarse, soft tree the model
would draw for it). The network sees the noisy map, that coarse tree and the FOV, and predicts the
clean binary map (x0 prediction with BCE: the "analog bits" recipe of Chen et al. 2022).
Sampling: DDIM from seeded noise, conditioned on the model's own samples.

  python scripts/detail_diffusion.py data   [--variants 20]
  python scripts/detail_diffusion.py train  --minutes 60
  python scripts/detail_diffusion.py evaluate --n 100 [--steps 50]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.data.imageio import read_mask, read_rgb  # noqa: E402
from retinagan.data.preprocess import fov_disc  # noqa: E402
from retinagan.data.readers import read_drive  # noqa: E402
from retinagan.inference import VesselGenerator  # noqa: E402
from retinagan.pipeline import prepare_arrays  # noqa: E402

RUN = Path("runs/detail-diffusion")
BF16 = torch.autocast("cpu", dtype=torch.bfloat16)  # twice as fast as float32 on this CPU


# ----------------------------------------------------------------------------- data
def augmented_drive(root: str, variants: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """DRIVE training maps, each `variants` times (the first as is), rotated up to 20 degrees and
    mirrored top-bottom at random at native size, then prepared at 256 px -> (maps, fovs) bool."""
    rng = np.random.default_rng(seed)
    maps, fovs = [], []
    for sample in read_drive(root, "training"):
        rgb, mask, vessels = read_rgb(sample.image), read_mask(sample.mask), read_mask(sample.vessels)
        for k in range(variants):
            angle = 0.0 if k == 0 else float(rng.uniform(-20, 20))
            flip = k > 0 and rng.random() < 0.5
            r, m, v = (_rotate(a, angle, flip) for a in (rgb, mask, vessels))
            out = prepare_arrays(r, m > 0, v > 0, None, 256, name=sample.id)
            maps.append(out["vessels"])
            fovs.append(out["fov"])
    return np.array(maps), np.array(fovs)


def _rotate(array: np.ndarray, angle: float, flip: bool) -> np.ndarray:
    image = Image.fromarray(array.astype(np.uint8) * (255 if array.dtype == bool else 1))
    image = image.rotate(angle, resample=Image.NEAREST if array.ndim == 2 else Image.BILINEAR)
    out = np.asarray(image)
    return out[::-1].copy() if flip else out


def build_data(args) -> None:
    maps, fovs = augmented_drive(args.drive, args.variants)
    generator = VesselGenerator.load(args.vessels)
    coarse = generator.decode(generator.encode(maps)).astype(np.float16)
    RUN.mkdir(parents=True, exist_ok=True)
    np.savez(RUN / "data.npz", maps=maps, fovs=fovs, coarse=coarse)
    print(json.dumps({"maps": len(maps), "vessel_share": float(maps.mean()),
                      "coarse_dice": float(np.mean([_dice(c >= 0.5, m) for c, m in zip(coarse, maps)]))}))


def _dice(a, b) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


# ----------------------------------------------------------------------------- model
class Block(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, t):
        h = self.conv1(F.silu(self.norm1(x))) + self.time(t)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class DetailUNet(nn.Module):
    """(noisy map, coarse tree, FOV, [self-conditioning x0 estimate]) + t -> x0 logits."""

    def __init__(self, widths=(48, 96, 128), inputs: int = 4):
        super().__init__()
        # space-to-depth in, sub-pixel out: every convolution works at half the map's size
        tdim = widths[0] * 4
        self.widths = widths
        self.time = nn.Sequential(nn.Linear(widths[0], tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.stem = nn.Conv2d(inputs * 4, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        cin = widths[0]
        for w in widths:
            self.down.append(Block(cin, w, tdim))
            cin = w
        self.mid = Block(cin, cin, tdim)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(Block(cin + w, w, tdim))
            cin = w
        self.head = nn.Conv2d(cin, 4, 3, padding=1)

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        half = self.widths[0] // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
        angles = t[:, None] * 1000.0 * freqs[None]
        return self.time(torch.cat([angles.sin(), angles.cos()], 1))

    def forward(self, x, t):
        temb = self.embed(t)
        h = self.stem(F.pixel_unshuffle(x, 2))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid(h, temb)
        for i, block in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], 1), temb)
        return F.pixel_shuffle(self.head(F.silu(h)), 2)


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule, clipped away from 0 and 1."""
    return (torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2).clamp(1e-5, 1 - 1e-5)


# ----------------------------------------------------------------------------- training
def train(args) -> None:
    torch.manual_seed(args.seed)
    data = np.load(RUN / "data.npz")
    maps = torch.as_tensor(data["maps"]).float()[:, None]
    fovs = torch.as_tensor(data["fovs"]).float()[:, None]
    coarse = torch.as_tensor(data["coarse"].astype(np.float32))[:, None]
    model = DetailUNet(args.widths)
    ema = DetailUNet(args.widths)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {len(maps)} maps", flush=True)
    rng = np.random.default_rng(args.seed)
    start, step, log = time.time(), 0, open(args.run / "stats.jsonl", "a")
    size = args.crop
    while time.time() - start < args.minutes * 60:
        idx = rng.integers(0, len(maps), args.batch)
        ys, xs = rng.integers(0, 256 - size + 1, args.batch), rng.integers(0, 256 - size + 1, args.batch)
        crop = lambda a: torch.stack([a[i, :, y:y + size, x:x + size] for i, y, x in zip(idx, ys, xs)])  # noqa: E731
        x0, cond, fov = crop(maps) * 2 - 1, crop(coarse), crop(fovs)
        t = torch.rand(args.batch)
        ab = alpha_bar(t)[:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn_like(x0)
        est = torch.zeros_like(x0)
        if rng.random() < 0.5:  # self-conditioning: half the steps see their own first estimate
            with torch.no_grad(), BF16:
                est = torch.sigmoid(model(torch.cat([xt, cond, fov, est], 1), t).float()) * 2 - 1
        with BF16:
            logits = model(torch.cat([xt, cond, fov, est], 1), t).float()
        loss = F.binary_cross_entropy_with_logits(logits, (x0 > 0).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        if step % 200 == 0:
            log.write(json.dumps({"step": step, "loss": round(loss.item(), 4), "min": round((time.time() - start) / 60, 1)}) + "\n")
            log.flush()
        if step % 2000 == 0:
            torch.save(ema.state_dict(), args.run / "ema.pt")
    torch.save(ema.state_dict(), args.run / "ema.pt")
    print(json.dumps({"steps": step, "minutes": round((time.time() - start) / 60, 1)}))


# ----------------------------------------------------------------------------- sampling
@torch.no_grad()
def draw(model: DetailUNet, coarse: np.ndarray, fovs: np.ndarray, seeds: list[int], steps: int = 50,
         eta: float = 0.0) -> np.ndarray:
    """(N, 256, 256) coarse trees -> (N, 256, 256) bool maps; map k depends on seeds[k] only."""
    out = []
    for c, f, seed in zip(coarse, fovs, seeds):
        g = torch.Generator().manual_seed(seed)
        cond = torch.as_tensor(np.asarray(c, np.float32))[None, None]
        fov = torch.as_tensor(np.asarray(f, np.float32))[None, None]
        x = torch.randn(1, 1, *cond.shape[-2:], generator=g)
        est = torch.zeros_like(x)
        ts = torch.linspace(1, 0, steps + 1)
        for t_now, t_next in zip(ts[:-1], ts[1:]):
            ab, ab_next = alpha_bar(t_now), alpha_bar(t_next)
            with BF16:
                est = torch.sigmoid(model(torch.cat([x, cond, fov, est], 1), t_now[None]).float()) * 2 - 1
            eps = (x - ab.sqrt() * est) / (1 - ab).sqrt()
            sigma = eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).sqrt()
            noise = torch.randn(x.shape, generator=g) if eta > 0 else 0.0
            x = ab_next.sqrt() * est + (1 - ab_next - sigma ** 2).clamp(min=0).sqrt() * eps + sigma * noise
        out.append(((est[0, 0] > 0) & (fov[0, 0] > 0)).numpy())
    return np.array(out)


def evaluate(args) -> None:
    from retinagan.metrics.evaluate_vessels import drive_maps, nearest_dice, pairwise_dice
    from retinagan.metrics.morphology import feature_table, morphology_distance
    from retinagan.pipeline import load_prepared

    model = DetailUNet(args.widths)
    model.load_state_dict(torch.load(args.run / "ema.pt", weights_only=True))
    model.eval()
    generator = VesselGenerator.load(args.vessels)
    seeds = list(range(args.n))
    coarse = generator.sample(seeds)
    fovs = np.repeat(fov_disc(256)[None], args.n, 0)
    t0 = time.time()
    maps = draw(model, coarse, fovs, seeds, args.steps, args.eta)
    seconds = (time.time() - t0) / args.n
    reference = feature_table(drive_maps(args.drive, "test", 256), desc="DRIVE test")
    floor = morphology_distance(reference, feature_table(drive_maps(args.drive, "training", 256), desc="DRIVE training"))
    base = morphology_distance(reference, feature_table(coarse >= 0.5, desc="base samples"))
    table = feature_table(maps, desc="detailed samples")
    detailed = morphology_distance(reference, table)
    training = load_prepared("runs/prepared-256.npz").vessels
    nearest = nearest_dice(maps, training)
    drive_nearest = nearest_dice(maps, drive_maps(args.drive, "training", 256))
    result = {
        "steps": args.steps, "eta": args.eta, "n": args.n, "seconds_per_map": round(seconds, 2),
        "floor": floor["mean"], "base": base["mean"], "detailed": detailed["mean"],
        "ratio": detailed["mean"] / floor["mean"], "base_ratio": base["mean"] / floor["mean"],
        "per_feature": {k: round(v, 3) for k, v in detailed.items() if k != "mean"},
        "medians": {k: float(np.median(v)) for k, v in table.items()},
        "reference_medians": {k: float(np.median(v)) for k, v in reference.items()},
        "vessel_share": float(maps.mean()), "diversity": pairwise_dice(maps[:50]),
        "nearest_training_dice_mean": float(nearest.mean()), "nearest_training_dice_max": float(nearest.max()),
        "nearest_drive_training_dice_max": float(drive_nearest.max()),
    }
    print(json.dumps(result, indent=1))
    (args.run / f"eval-{args.steps}-{args.eta}.json").write_text(json.dumps(result, indent=1))
    grid = np.concatenate([np.concatenate([coarse[i] >= 0.5, maps[i]], 1) for i in range(4)], 0)
    Image.fromarray(grid.astype(np.uint8) * 255).save(args.run / f"samples-{args.steps}-{args.eta}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["data", "train", "evaluate"])
    parser.add_argument("--drive", default="../shared/data/drive")
    parser.add_argument("--vessels", default="checkpoints/aae-lsgan-128")
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--widths", default="48,96,128", help="channels per level, comma-separated")
    parser.add_argument("--run", default=str(RUN), help="run folder (data.npz is read from runs/detail-diffusion)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--eta", type=float, default=0.0)
    args = parser.parse_args()
    args.widths = tuple(int(w) for w in args.widths.split(","))
    args.run = Path(args.run)
    args.run.mkdir(parents=True, exist_ok=True)
    {"data": build_data, "train": train, "evaluate": evaluate}[args.command](args)


if __name__ == "__main__":
    main()
