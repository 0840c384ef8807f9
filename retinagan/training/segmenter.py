"""Training the vessel segmenter on DRIVE: random rotated/scaled patches, BCE + Dice."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from retinagan.checkpoint import save_model
from retinagan.data.imageio import read_mask, read_rgb
from retinagan.data.preprocess import fov_box, segmenter_input
from retinagan.data.readers import read_drive
from retinagan.losses import bce_dice_loss
from retinagan.models.segmenter import SegmenterConfig, VesselSegmenter
from retinagan import distributed
from retinagan.training.common import EMA, StatsLog, cosine_lr, pick_device, seed_everything, start_model, step_context


@dataclass
class SegmenterTrainConfig:
    drive: str = "../shared/data/drive"  # DRIVE root; only its training split is used
    output: str = "runs/segmenter"  # run folder: stats.jsonl and the checkpoint
    model: SegmenterConfig = field(default_factory=SegmenterConfig)
    steps: int = 3500  # optimiser steps
    batch_size: int = 8
    patch: int = 128  # side of the training patches
    lr: float = 3e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.995
    bf16: bool = False  # bf16 autocast: pays off on GPUs; measured 10x slower for this U-Net on CPU
    device: str = "auto"  # "auto" (the GPU when there is one), "cpu", "cuda", ...
    seed: int = 0
    log_every: int = 50
    init: str = ""  # a segmenter checkpoint to start from (a fine-tune; its model config replaces --model)


def load_drive_tensors(root: str | Path, split: str = "training"):
    """Segmenter inputs, vessel maps and FOV masks of a DRIVE split as (N, 1, H, W) tensors."""
    inputs, vessels, masks = [], [], []
    for sample in read_drive(root, split):
        rgb = read_rgb(sample.image)
        mask = read_mask(sample.mask)
        inputs.append(segmenter_input(rgb, mask))
        vessels.append(read_mask(sample.vessels))
        masks.append(mask)
    fov_widths = [fov_box(m)[3] - fov_box(m)[2] for m in masks]
    as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).float()[:, None]  # noqa: E731
    return as_tensor(inputs), as_tensor(vessels), as_tensor(masks), int(np.median(fov_widths))


def random_patches(images: torch.Tensor, labels: torch.Tensor, count: int, patch: int, generator: torch.Generator):
    """Random patches with random rotation, scale (0.8-1.25) and flips, sampled by one grid_sample.

    count is the global batch; a data-parallel process cuts only its share (retinagan.distributed)."""
    n, _, height, width = images.shape
    index = torch.randint(n, (count,), generator=generator)
    angle = torch.rand(count, generator=generator) * 2 * math.pi
    scale = torch.exp((torch.rand(count, generator=generator) * 2 - 1) * math.log(1.25))
    flip = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    half = patch * scale / 2 * math.sqrt(2)  # keep the rotated patch inside the image
    centre_x = half + torch.rand(count, generator=generator) * (width - 2 * half)
    centre_y = half + torch.rand(count, generator=generator) * (height - 2 * half)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    # affine_grid works in [-1, 1] coordinates of the source image.
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = cos * flip * patch / width
    theta[:, 0, 1] = -sin * patch / width
    theta[:, 1, 0] = sin * flip * patch / height
    theta[:, 1, 1] = cos * patch / height
    theta[:, 0, 2] = centre_x / width * 2 - 1
    theta[:, 1, 2] = centre_y / height * 2 - 1
    # Photometric jitter on the standardised input: contrast, brightness, noise.
    gain = 1 + (torch.rand(count, 1, 1, 1, generator=generator) - 0.5) * 0.4
    shift = (torch.rand(count, 1, 1, 1, generator=generator) - 0.5) * 0.4
    noise = torch.randn((count, 1, patch, patch), generator=generator) * 0.05
    index, theta, gain, shift, noise = (distributed.shard(t) for t in (index, theta, gain, shift, noise))
    grid = F.affine_grid(theta, (len(index), 1, patch, patch), align_corners=False)
    x = F.grid_sample(images[index], grid, mode="bilinear", align_corners=False)
    y = F.grid_sample(labels[index], grid, mode="bilinear", align_corners=False)
    return x * gain + shift + noise, (y > 0.5).float()


def train_segmenter(cfg: SegmenterTrainConfig) -> Path:
    """Train on DRIVE training; the threshold is chosen there and DRIVE test scored."""
    images, vessels, _, fov_width = load_drive_tensors(cfg.drive, "training")
    cfg.model.fov_width = fov_width
    return fit_segmenter(cfg, images, vessels, "DRIVE training split (20 photos, 1st_manual maps); DRIVE terms: research use",
                         finalize=lambda folder: finalize_segmenter(folder, cfg.drive))


def fit_segmenter(cfg: SegmenterTrainConfig, images: torch.Tensor, vessels: torch.Tensor, training_data: str,
                  finalize=None, progress: bool = True) -> Path:
    """The training loop on any set: segmenter inputs and binary vessel maps, each (N, 1, H, W)
    (`load_drive_tensors`, or `segmenter_input` of other photos). cfg.model.fov_width must be the
    FOV width of these images: inference rescales photos to it. Writes cfg.output/checkpoint and
    runs `finalize(folder)` on it (rank 0); returns the folder."""
    seed_everything(cfg.seed)
    world, device = distributed.setup(pick_device(cfg.device))
    distributed.local_batch(cfg.batch_size)
    out = Path(cfg.output)
    model, _ = start_model(cfg.init, "segmenter", cfg.model, VesselSegmenter, device)
    cfg.model = model.config
    model = model.to(memory_format=torch.channels_last)
    if world.size > 1:
        distributed.global_batchnorm(model)
        distributed.broadcast_parameters(model)
    ema = EMA(model, cfg.ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    generator = torch.Generator().manual_seed(cfg.seed)
    stats = StatsLog(out / "stats.jsonl")
    start, running = time.time(), []
    model.train()
    for step in (bar := tqdm(range(cfg.steps), desc="segmenter", unit="step", disable=not (world.main and progress))):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr)
        x, y = (t.to(device, non_blocking=True) for t in random_patches(images, vessels, cfg.batch_size, cfg.patch, generator))
        with step_context(cfg.bf16, device):
            logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = bce_dice_loss(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.step(optimizer)
        ema.update(model, step + 1)
        running.append(loss.detach())
        if (step + 1) % cfg.log_every == 0:
            mean = distributed.global_mean(torch.stack(running).mean()).item()
            running.clear()
            bar.set_postfix(loss=f"{mean:.4f}")
            stats.write(step=step + 1, loss=mean, lr=optimizer.param_groups[0]["lr"], seconds=time.time() - start)
    info = dict(
        training_data=training_data,
        steps=cfg.steps,
        wall_time_s=round(time.time() - start, 1),
        device=str(device),
        processes=world.size,
        train_config=asdict(cfg),
    )
    folder = out / "checkpoint"
    if world.main:
        save_model(folder, ema.model.float().to(memory_format=torch.contiguous_format), "segmenter", **info)
        if finalize is not None:
            finalize(folder)
    distributed.teardown()
    return folder


def finalize_segmenter(folder: str | Path, drive: str | Path, progress: bool = True) -> dict:
    """Choose the threshold on DRIVE training, score DRIVE test, store both in config.json."""
    from retinagan.checkpoint import update_metrics
    from retinagan.inference import Segmenter
    from retinagan.metrics.evaluate_segmenter import choose_threshold, score_drive

    segmenter = Segmenter.load(folder)
    segmenter.threshold = choose_threshold(segmenter, drive, progress)
    metrics = {"threshold": segmenter.threshold, "threshold_chosen_on": "DRIVE training"}
    if (Path(drive) / "test").is_dir():
        metrics["drive_test"] = score_drive(segmenter, drive, "test", progress=progress)
    update_metrics(folder, metrics)
    return metrics
