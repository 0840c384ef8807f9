"""Training the vessel detailer (retinagan.models.detail) on DRIVE's hand-drawn training maps.

Pairs: each of DRIVE training's 20 hand-drawn maps, `variants` times (the first as published,
the others rotated up to 20 degrees and mirrored top-bottom at random, at native size), prepared
at 256 px exactly as every reference map is (FOV crop, resize, laterality), so their thin
vessels break up as DRIVE test's do; each paired with the vessel model's decoding of its encoder
code, the coarse tree that model would draw for it. One step: random crops, a time t per crop,
the map noised to t, and binary cross-entropy of the predicted clean map; half the steps first
make an estimate without gradients and feed it back (self-conditioning). DRIVE test is never
seen: it stays the reference of `evaluate vessels`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from retinagan.checkpoint import save_model, save_training_state
from retinagan.data.imageio import read_mask, read_rgb
from retinagan.data.preprocess import fov_disc
from retinagan.data.readers import read_drive
from retinagan.models.detail import DetailConfig, VesselDetailer
from retinagan.pipeline import prepare_arrays
from retinagan.training.common import EMA, LossSums, Schedule, bf16_units, pick_device, resume_run, seed_everything, step_context
from retinagan.visual import save_grid


@dataclass
class DetailTrainConfig:
    drive: str = "../shared/data/drive"  # DRIVE root; only its training split is used
    vessels: str = "checkpoints/aae-lsgan-128"  # the vessel model whose coarse trees the detailer learns to redraw
    output: str = "runs/detail"  # run folder: stats.jsonl, samples/, states, checkpoint/
    model: DetailConfig = field(default_factory=DetailConfig)
    variants: int = 20  # rotated/mirrored versions of each hand-drawn map (the first unchanged)
    steps: int = 20000
    batch_size: int = 8
    crop: int = 128  # side of the training crops (the network is convolutional; maps are drawn whole)
    lr: float = 2e-4  # constant (AdamW, no weight decay)
    ema_decay: float = 0.999
    self_condition: float = 0.5  # share of steps that feed back a first estimate
    time_limit_min: float = 0.0  # > 0: also stop when this many minutes have passed
    device: str = "auto"
    bf16: bool = field(default_factory=bf16_units)  # bf16 autocast (2x on this Xeon with AMX; off where the CPU lacks bf16 units)
    seed: int = 0
    log_every: int = 200
    sample_every: int = 2000  # grid of the base model's samples of seeds 0-3, coarse beside detailed
    state_every: int = 2000
    resume: bool = True


def augmented_drive(root: str | Path, variants: int, seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """DRIVE training's hand-drawn maps, `variants` versions each, prepared at `size` -> (maps, FOVs), bool."""
    rng = np.random.default_rng(seed)
    maps, fovs = [], []
    for sample in read_drive(root, "training"):
        rgb, mask, vessels = read_rgb(sample.image), read_mask(sample.mask), read_mask(sample.vessels)
        for k in range(variants):
            angle = 0.0 if k == 0 else float(rng.uniform(-20, 20))
            flip = k > 0 and rng.random() < 0.5  # top-bottom: keeps the optic disc's side
            turned = [_turn(a, angle, flip) for a in (rgb, mask, vessels)]
            out = prepare_arrays(turned[0], turned[1] > 0, turned[2] > 0, None, size, name=sample.id)
            maps.append(out["vessels"])
            fovs.append(out["fov"])
    return np.array(maps), np.array(fovs)


def _turn(array: np.ndarray, angle: float, flip: bool) -> np.ndarray:
    """Rotate about the centre (nearest neighbour for binary maps, so 1-px vessels stay 1 px)."""
    image = Image.fromarray(array.astype(np.uint8) * 255 if array.dtype == bool else array)
    out = np.asarray(image.rotate(angle, resample=Image.NEAREST if array.ndim == 2 else Image.BILINEAR))
    return out[::-1].copy() if flip else out


def training_pairs(cfg: DetailTrainConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """-> maps, coarse trees, FOVs as (N, 1, S, S) float tensors, and the vessel model."""
    from retinagan.inference import VesselGenerator

    generator = VesselGenerator.load(cfg.vessels)
    size = generator.model.config.image_size
    if size != cfg.model.image_size:
        raise ValueError(f"the vessel model {cfg.vessels} draws {size}-px maps; the detailer is configured for {cfg.model.image_size}")
    maps, fovs = augmented_drive(cfg.drive, cfg.variants, cfg.seed, size)
    coarse = np.concatenate([generator.decode(generator.encode(maps[i:i + 32])) for i in range(0, len(maps), 32)])
    as_tensor = lambda a: torch.from_numpy(np.asarray(a, np.float32))[:, None]  # noqa: E731
    return as_tensor(maps), as_tensor(coarse), as_tensor(fovs), generator


def random_crops(arrays: list[torch.Tensor], count: int, crop: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The same random crops (one per draw) of each of several aligned (N, C, S, S) tensors."""
    side = arrays[0].shape[-1]
    index = torch.randint(len(arrays[0]), (count,), generator=generator)
    ys, xs = (torch.randint(side - crop + 1, (count,), generator=generator) for _ in range(2))
    return [torch.stack([a[i, :, y:y + crop, x:x + crop] for i, y, x in zip(index.tolist(), ys.tolist(), xs.tolist())]) for a in arrays]


def train_step(model: VesselDetailer, optimizer, clean, coarse, fov, cfg: DetailTrainConfig, generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
    """One optimiser step on a batch of crops; returns the detached loss."""
    t = torch.rand(len(clean), generator=generator).to(device)
    noise = torch.randn(clean.shape, generator=generator).to(device)
    x = model.noised(clean, t, noise)
    estimate = torch.zeros_like(x)
    if torch.rand((), generator=generator).item() < cfg.self_condition:
        with torch.no_grad(), step_context(cfg.bf16, device):
            estimate = torch.sigmoid(model(torch.cat([x, coarse, fov, estimate], 1), t).float()) * 2 - 1
    with step_context(cfg.bf16, device):
        logits = model(torch.cat([x, coarse, fov, estimate], 1), t)
    loss = F.binary_cross_entropy_with_logits(logits.float(), clean)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_detail(cfg: DetailTrainConfig) -> Path:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(cfg.output)
    maps, coarse, fovs, vessels = training_pairs(cfg)
    model = VesselDetailer(cfg.model).to(device)
    ema = EMA(model, cfg.ema_decay)
    optimizers = {"model": torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)}
    generators = {"data": torch.Generator().manual_seed(cfg.seed)}
    modules = {"model": model, "ema": ema.model}
    start_step, elapsed, stats = resume_run(out, cfg.resume, modules, optimizers, generators)
    started, sums = time.time() - elapsed, LossSums(cfg.log_every)
    schedule, done = Schedule(cfg.steps, cfg.time_limit_min, started), start_step
    preview_seeds = [0, 1, 2, 3]
    preview = vessels.sample(preview_seeds)
    for step in (bar := tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc="detail", unit="step")):
        if schedule.position(step) >= cfg.steps:
            break
        batch = [a.to(device) for a in random_crops([maps, coarse, fovs], cfg.batch_size, cfg.crop, generators["data"])]
        sums.add({"loss": train_step(model, optimizers["model"], *batch, cfg, generators["data"], device)})
        ema.update(model, step + 1)
        done = step + 1
        if done % cfg.log_every == 0:
            row = sums.take()
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            stats.write(step=done, seconds=round(time.time() - started, 1), **row)
        if done % cfg.sample_every == 0:
            drawn = ema.model.draw(preview, np.repeat(fov_disc(cfg.model.image_size)[None], len(preview), 0), preview_seeds, bf16=cfg.bf16)
            save_grid(out / "samples" / f"step-{done:06d}.png", np.concatenate([preview >= 0.5, drawn]).astype(np.float32), columns=len(preview))
        if done % cfg.state_every == 0 and done < cfg.steps:
            save_training_state(out, done, modules, optimizers, generators, extra={"wall_time_s": time.time() - started})
    info = dict(
        training_data=(f"DRIVE training split ({len(maps) // cfg.variants} hand-drawn 1st_manual maps, {cfg.variants} rotated/mirrored "
                       f"versions each, prepared at {cfg.model.image_size} px), paired with {cfg.vessels}'s decodings of them; "
                       "DRIVE terms: research use"),
        vessel_model=cfg.vessels,
        steps=done,
        wall_time_s=round(time.time() - started, 1),
        device=str(device),
        train_config=asdict(cfg),
    )
    return save_model(out / "checkpoint", ema.model, "detail", **info)
