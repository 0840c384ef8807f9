"""Training the vessel-tree autoencoders: VAE, AAE (BCE or LSGAN), dual-adversarial AAE.

One step runs these named phases:
  1. autoencoder: reconstruction (weight gamma) [+ KL for the VAE]
     [+ map-fooling for the dual AAE, on maps decoded from prior samples];
  2. code discriminator: prior samples vs encoded codes (AAE);
  3. regularisation (AAE): the encoder alone learns to fool the code discriminator, with its
     own optimiser step, as in Makhzani et al.'s AAE. Summed into phase 1, this gradient was
     dwarfed by the gamma = 100 reconstruction term: encoded codes spread to std ~2.5 while
     the prior has 1, and prior samples decoded to near-empty maps;
  4. map discriminator: real maps vs decoded prior samples (dual AAE).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from retinagan import distributed
from retinagan.checkpoint import save_model, save_training_state
from retinagan.errors import CheckpointError
from retinagan.losses import cldice_loss, discriminator_loss, generator_loss, kl_divergence, lowpass_reconstruction_loss, reconstruction_loss
from retinagan.metrics.segmentation import dice
from retinagan.models.autoencoder import AutoencoderConfig, CodeDiscriminator, MapDiscriminator, VesselAutoencoder, reparameterise
from retinagan.pipeline import load_prepared
from retinagan.training.common import EMA, LossSums, Schedule, bf16_units, cosine_lr, drawn_maps, freeze, judge, layout, pick_device, resume_run, seed_everything, start_model, step_context
from retinagan.visual import save_grid


@dataclass
class AutoencoderTrainConfig:
    data: str = "runs/prepared-256.npz"  # prepared set (python -m retinagan prepare)
    output: str = "runs/aae"  # run folder: stats.jsonl, samples/, states, checkpoint/
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    variant: str = "aae"  # "vae" (KL) or "aae" (code discriminator)
    adversarial: str = "lsgan"  # "bce" (vanilla GAN) or "lsgan" (least squares)
    dual: bool = False  # add a discriminator on decoded maps
    reconstruction: str = "bce_dice"  # "bce_dice", "multiscale", "bce" or "l1"
    recon_weight: float = 100.0  # gamma
    kl_weight: float = 1.0  # VAE only
    code_weight: float = 1.0  # AAE: weight of fooling the code discriminator
    map_weight: float = 1.0  # dual AAE: weight of fooling the map discriminator
    map_real: str = "all"  # dual AAE: the map discriminator's real maps: "all" training maps, or "manual" (hand-drawn) ones only
    map_fakes: str = "prior"  # dual AAE: what it judges against them: maps decoded from "prior" samples, "recon"structions, or "both"
    map_channels: int = 16  # dual AAE: the map discriminator's width
    map_binary: bool = False  # dual AAE: judge the decoded maps thresholded (as users get them; straight-through gradient), not soft
    map_r1: float = 0.0  # dual AAE: > 0: R1 penalty (gamma/2 x the squared gradient of its real logits w.r.t. the real maps) on the map discriminator
    recon_lowpass: float = 0.0  # > 0: reconstruction scored on both maps blurred (Gaussian sigma px) + recon_detail_weight x at full size
    recon_detail_weight: float = 0.1  # with recon_lowpass: weight of the full-size reconstruction term
    recon_cldice: float = 0.0  # > 0: + this x soft clDice loss of the reconstruction (losses.cldice_loss: vessels count by centre-line length, not area)
    cldice_binary: bool = False  # with recon_cldice: score the decoded map thresholded (straight-through gradient), so grey plateaus count for nothing
    freeze: str = ""  # comma-separated parameter-name prefixes kept as they start (e.g. "encoder,decoder.dense"); a frozen encoder skips the code phases
    init: str = ""  # an aae or vae checkpoint to start from (a fine-tune; its model config replaces --model)
    augment: str = "standard"  # "standard" (flip, +-10 deg, +-3% shift) or "strong" (+ +-20 deg, scale 0.9-1.1, elastic warp)
    drop_grades: str = ""  # e.g. "3,4": leave out photos of these grades
    holdout_every: int = 10  # every k-th sample (by id) is held out for validation
    steps: int = 4000
    batch_size: int = 8
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # "cosine" (warm-up, then decay to 2% of lr) or "constant"
    ema_decay: float = 0.998
    time_limit_min: float = 0.0  # > 0: also stop when this many minutes have passed (schedule follows the clock)
    device: str = "auto"  # "auto" (the GPU when there is one), "cpu", "cuda", "cuda:1", ...
    channels_last: bool = True  # NHWC activations: faster convolutions (bench/bench_train.py)
    foreach: bool = True  # multi-tensor optimiser updates
    bf16: bool = field(default_factory=bf16_units)  # bf16 autocast of the step; default on where the hardware has bf16 (bench/bench_train.py)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500  # sample grid from fixed seeds
    state_every: int = 500  # resumable training state
    resume: bool = True  # continue from the latest state in output, if any


def split_holdout(ids: np.ndarray, every: int) -> np.ndarray:
    """Boolean mask of held-out samples: every k-th id in sorted order (stable across runs)."""
    order = np.argsort(ids)
    held = np.zeros(len(ids), dtype=bool)
    held[order[::every]] = True
    return held


MAP_REAL = ("all", "manual")
MAP_FAKES = ("prior", "recon", "both")


def load_maps(cfg: AutoencoderTrainConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """-> training maps, held-out maps, the indices of the hand-drawn training maps, data info."""
    prepared = load_prepared(cfg.data)
    keep = np.ones(len(prepared), dtype=bool)
    if cfg.drop_grades:
        dropped = [int(g) for g in cfg.drop_grades.split(",")]
        keep &= ~np.isin(prepared.grades, dropped)
    prepared = prepared.select(keep)
    held = split_holdout(prepared.ids, cfg.holdout_every)
    maps = torch.from_numpy(prepared.vessels).to(torch.uint8)[:, None]  # (N, 1, S, S) uint8 0/1
    sources = {str(s): int((prepared.sources == s).sum()) for s in np.unique(prepared.sources)}
    manual = torch.from_numpy(np.flatnonzero(prepared.vessel_sources[~held] == "manual"))
    info = {"train": int((~held).sum()), "holdout": int(held.sum()), "sources": sources, "dropped_grades": cfg.drop_grades,
            "manual_train": len(manual)}
    return maps[torch.from_numpy(~held)], maps[torch.from_numpy(held)], manual, info


AUGMENTS = {"standard": dict(degrees=10, scale=0.0, warp=0.0), "strong": dict(degrees=20, scale=0.1, warp=0.03)}


def augment(maps: torch.Tensor, generator: torch.Generator, strength: str = "standard") -> torch.Tensor:
    """uint8 maps -> float maps, randomly flipped top-bottom, rotated, shifted +-3%; "strong" also
    scales (0.9-1.1) and warps them elastically (a smooth 5x5 random displacement field of up to
    ~3% of the side, so vessels bend and branch points move as between two eyes).

    No left-right flips: the prepared sets put every optic disc on one side. maps is this
    process's share of the global batch: the random draws cover the global batch (on the CPU
    generator, so CPU and GPU runs see the same data) and this process keeps its slice.
    """
    if strength not in AUGMENTS:
        raise ValueError(f"augment must be one of {sorted(AUGMENTS)}, not {strength!r}")
    settings, count = AUGMENTS[strength], len(maps) * distributed.WORLD.size
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(settings["degrees"])
    flip = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * 0.06
    scale = 1.0
    if settings["scale"]:  # drawn only when used: "standard" runs repeat those made before "strong" existed
        scale = 1 + (torch.rand(count, generator=generator) * 2 - 1) * settings["scale"]
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) * flip / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) * flip / scale
    theta[:, :, 2] = shift
    theta = distributed.shard(theta)
    grid = F.affine_grid(theta.to(maps.device), list(maps.shape), align_corners=False)
    if settings["warp"]:
        field = distributed.shard((torch.rand(count, 2, 5, 5, generator=generator) * 2 - 1) * settings["warp"])
        field = F.interpolate(field.to(maps.device), size=maps.shape[-2:], mode="bicubic", align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1)
    return (F.grid_sample(maps.float(), grid, mode="bilinear", align_corners=False) > 0.5).float()


@torch.no_grad()
def reconstruction_dice(model: VesselAutoencoder, maps: torch.Tensor, batch: int = 16) -> float:
    """Mean Dice of thresholded reconstructions (from the code means) of uint8 maps."""
    scores, device = [], next(model.parameters()).device
    for i in range(0, len(maps), batch):
        x = maps[i : i + batch].float()
        recon = (model.decode(model.encode(x.to(device))) > 0.5).cpu()
        scores += [dice(r.numpy(), t.numpy() > 0.5) for r, t in zip(recon, x)]
    return float(np.mean(scores)) if scores else float("nan")


def start_autoencoder(cfg: AutoencoderTrainConfig, device: torch.device) -> VesselAutoencoder:
    """A fresh model, or cfg.init's (its config wins) — grown by the fine blocks that
    cfg.model.fine_blocks asks beyond the checkpoint's (they start as the identity)."""
    model, _ = start_model(cfg.init, ("aae", "vae"), cfg.model, VesselAutoencoder, device)
    if not cfg.init or cfg.model.fine_blocks <= model.config.fine_blocks:
        return model
    grown = VesselAutoencoder(replace(model.config, fine_blocks=cfg.model.fine_blocks)).to(device)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(".body." not in key for key in missing):
        raise CheckpointError(f"--init {cfg.init}: cannot grow it by fine blocks ({unexpected or missing})")
    return grown.train()


def train_autoencoder(cfg: AutoencoderTrainConfig) -> Path:
    if cfg.variant not in ("vae", "aae"):
        raise ValueError(f"variant must be 'vae' or 'aae', not {cfg.variant!r}")
    if cfg.lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule must be 'cosine' or 'constant', not {cfg.lr_schedule!r}")
    if cfg.augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {sorted(AUGMENTS)}, not {cfg.augment!r}")
    if cfg.map_real not in MAP_REAL or cfg.map_fakes not in MAP_FAKES:
        raise ValueError(f"map_real must be one of {', '.join(MAP_REAL)} and map_fakes one of {', '.join(MAP_FAKES)}, not {cfg.map_real!r} / {cfg.map_fakes!r}")
    if cfg.recon_lowpass < 0:
        raise ValueError(f"recon_lowpass must be >= 0, not {cfg.recon_lowpass}")
    if cfg.recon_cldice < 0:
        raise ValueError(f"recon_cldice must be >= 0, not {cfg.recon_cldice}")
    if cfg.cldice_binary and cfg.recon_cldice == 0:
        raise ValueError("cldice_binary needs recon_cldice > 0 (the weight of the clDice term it changes)")
    seed_everything(cfg.seed)
    world, device = distributed.setup(pick_device(cfg.device))
    distributed.local_batch(cfg.batch_size)
    out = Path(cfg.output)
    train_maps, holdout_maps, manual, data_info = load_maps(cfg)
    if cfg.dual and cfg.map_real == "manual" and not len(manual):
        raise ValueError(f"--map-real manual: {cfg.data} has no hand-drawn training maps (vessel source 'manual')")
    model = start_autoencoder(cfg, device)
    cfg.model = model.config
    if frozen := freeze({"vessels": model}, ",".join(f"vessels:{p}" for p in filter(None, (q.strip() for q in cfg.freeze.split(","))))):
        print(f"frozen: {frozen:,} parameters ({cfg.freeze})")
    model = model.to(memory_format=layout(cfg.channels_last))
    code_disc = CodeDiscriminator(cfg.model.latent_dim).to(device)
    map_disc = MapDiscriminator(cfg.map_channels).to(device)
    if world.size > 1:
        distributed.global_batchnorm(model)
        distributed.global_batchnorm(map_disc)
        distributed.broadcast_parameters(model, code_disc, map_disc)
    ema = EMA(model, cfg.ema_decay)
    betas = (0.5, 0.999)  # the usual GAN setting, for the discriminators
    optimizers = {
        # The autoencoder is driven mostly by the (gamma-weighted) reconstruction: plain Adam
        # momentum fits it several times faster than beta1 = 0.5.
        "model": torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.999), foreach=cfg.foreach),
        "code_disc": torch.optim.Adam(code_disc.parameters(), lr=cfg.lr, betas=betas, foreach=cfg.foreach),
        "encoder_reg": torch.optim.Adam(model.encoder.parameters(), lr=cfg.lr, betas=betas, foreach=cfg.foreach),
        "map_disc": torch.optim.Adam(map_disc.parameters(), lr=cfg.lr, betas=betas, foreach=cfg.foreach),
    }
    modules = {"model": model, "ema": ema.model, "code_disc": code_disc, "map_disc": map_disc}
    generators = {"data": torch.Generator().manual_seed(cfg.seed)}
    start_step, elapsed, stats = resume_run(out, cfg.resume, modules, optimizers, generators)
    started, sums = time.time() - elapsed, LossSums(cfg.log_every)
    schedule, done, scored_at = Schedule(cfg.steps, cfg.time_limit_min, started), start_step, None
    steps = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc=cfg.variant, unit="step", disable=not world.main)
    for step in (bar := steps):
        position = schedule.position(step, device)
        if position >= cfg.steps:
            break
        if cfg.lr_schedule == "cosine":
            for optimizer in optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(position, cfg.steps, cfg.lr)
        index = distributed.shard(torch.randint(len(train_maps), (cfg.batch_size,), generator=generators["data"]))
        x = augment(train_maps[index].to(device, non_blocking=True), generators["data"], cfg.augment).contiguous(memory_format=layout(cfg.channels_last))
        real_maps = x
        if cfg.dual and cfg.map_real == "manual":  # the map discriminator's real side: hand-drawn maps, drawn and augmented on their own
            pick = manual[distributed.shard(torch.randint(len(manual), (cfg.batch_size,), generator=generators["data"]))]
            real_maps = augment(train_maps[pick].to(device, non_blocking=True), generators["data"], cfg.augment).contiguous(memory_format=layout(cfg.channels_last))
        with step_context(cfg.bf16, device):
            losses = train_step(cfg, model, code_disc, map_disc, optimizers, x, real_maps)
        ema.update(model, step + 1)
        sums.add(losses)  # tensors: no host sync until logging
        done = step + 1
        if done % cfg.log_every == 0:
            row = sums.take()
            bar.set_postfix(recon=f"{row['recon']:.3f}")
            stats.write(step=done, seconds=round(time.time() - started, 1), **row)
        if world.main and done % cfg.sample_every == 0 and done < cfg.steps:
            holdout, scored_at = snapshot(out, done, ema.model, holdout_maps, stats), done
        if world.main and done % cfg.state_every == 0 and done < cfg.steps:
            save_training_state(out, done, modules, optimizers, generators, extra={"wall_time_s": time.time() - started})
    if not world.main:  # rank 0 evaluates and writes the checkpoint
        distributed.teardown()
        return out / "checkpoint"
    if done < cfg.steps:
        print(f"time limit reached after {done} steps")
    if scored_at != done:  # a clock-stopped run may end on a sample step, already scored
        holdout = snapshot(out, done, ema.model, holdout_maps, stats)
    info = dict(
        training_data=f"prepared set {cfg.data}: {data_info}" + (f"; fine-tuned from {cfg.init}" if cfg.init else ""),
        steps=done,
        wall_time_s=round(time.time() - started, 1),
        device=str(device),
        processes=world.size,
        train_config=asdict(cfg),
        metrics={"holdout_reconstruction_dice": holdout},
    )
    folder = save_model(out / "checkpoint", ema.model, cfg.variant, **info)
    distributed.teardown()
    return folder


def snapshot(out: Path, step: int, model: VesselAutoencoder, holdout_maps: torch.Tensor, stats) -> float:
    """Sample grid from fixed seeds 0-15; logs and returns the held-out reconstruction Dice."""
    holdout = reconstruction_dice(model, holdout_maps)
    stats.write(step=step, holdout_dice=holdout)
    save_grid(out / "samples" / f"step-{step:06d}.png", model.sample(list(range(16))).cpu().numpy()[:, 0])
    return holdout


def decoded_fakes(cfg, model, logits: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """The maps the dual AAE's map discriminator judges as fake (cfg.map_fakes): decoded prior
    samples, the batch's reconstructions, or half of each; soft, or thresholded (cfg.map_binary)."""
    as_map = drawn_maps if cfg.map_binary else torch.sigmoid
    if cfg.map_fakes == "recon":
        return as_map(logits)
    prior = as_map(model.decoder(distributed.randn(mu)))
    if cfg.map_fakes == "prior":
        return prior
    half = len(prior) // 2
    return torch.cat([prior[:half], as_map(logits[half:]).to(prior.dtype)])


def train_step(cfg, model, code_disc, map_disc, optimizers, x: torch.Tensor, real_maps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One step of the phases; returns detached losses. real_maps: the map discriminator's real
    side (default x, the batch itself)."""
    real_maps = x if real_maps is None else real_maps
    adversarial = cfg.variant == "aae"
    # Phase 1: autoencoder (discriminators frozen).
    code_disc.requires_grad_(False)
    map_disc.requires_grad_(False)
    logits, mu, log_var = model(x)
    if cfg.recon_lowpass > 0:
        recon = lowpass_reconstruction_loss(logits, x, cfg.recon_lowpass) + cfg.recon_detail_weight * reconstruction_loss(logits, x, cfg.reconstruction)
    else:
        recon = reconstruction_loss(logits, x, cfg.reconstruction)
    logs = {}
    if cfg.recon_cldice > 0:  # the decoded map soft, or thresholded as users get it (straight-through)
        logs["cldice"] = cldice_loss((drawn_maps if cfg.cldice_binary else torch.sigmoid)(logits.float()), x)
        recon = recon + cfg.recon_cldice * logs["cldice"]
    loss = cfg.recon_weight * recon
    out = {"recon": recon.detach(), **{name: value.detach() for name, value in logs.items()}}
    if not adversarial:
        kl = kl_divergence(mu, log_var)
        loss = loss + cfg.kl_weight * kl
        out["kl"] = kl.detach()
    if cfg.dual:
        fake_maps = decoded_fakes(cfg, model, logits, mu)
        _, fake_logits = judge(map_disc, (real_maps,), (fake_maps,))
        fool_map = generator_loss(fake_logits, cfg.adversarial)
        loss = loss + cfg.map_weight * fool_map
        out["fool_map"] = fool_map.detach()
    optimizers["model"].zero_grad(set_to_none=True)
    loss.backward()
    distributed.step(optimizers["model"])
    if adversarial and any(p.requires_grad for p in model.encoder.parameters()):
        out.update(code_phases(cfg, model, code_disc, optimizers, x, mu, log_var))
    # Phase 4: map discriminator.
    if cfg.dual:
        map_disc.requires_grad_(True)
        real_in = real_maps.detach().float().requires_grad_(cfg.map_r1 > 0)
        real_logits, fake_logits = judge(map_disc, (real_in,), (fake_maps.detach(),))
        d_map = discriminator_loss(real_logits, fake_logits, cfg.adversarial)
        total = d_map
        if cfg.map_r1 > 0:  # R1 (Mescheder et al. 2018): keeps the discriminator smooth around real maps, so it cannot win outright
            grad, = torch.autograd.grad(real_logits.float().sum(), real_in, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            total = d_map + cfg.map_r1 / 2 * r1
            out["r1_map"] = r1.detach()
        optimizers["map_disc"].zero_grad(set_to_none=True)
        total.backward()
        distributed.step(optimizers["map_disc"])
        out["d_map"] = d_map.detach()
    return out


def code_phases(cfg, model, code_disc, optimizers, x: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> dict[str, torch.Tensor]:
    """The AAE's phases 2 and 3: the code discriminator learns prior samples vs the codes of x
    (mu, log_var from phase 1); then the encoder alone, with its own optimiser, fools it."""
    code_disc.requires_grad_(True)
    z = reparameterise(mu, log_var).detach()
    d_code = discriminator_loss(code_disc(distributed.randn(mu)), code_disc(z), cfg.adversarial)
    optimizers["code_disc"].zero_grad(set_to_none=True)
    d_code.backward()
    distributed.step(optimizers["code_disc"])
    code_disc.requires_grad_(False)
    fool_code = cfg.code_weight * generator_loss(code_disc(reparameterise(*model.encoder(x))), cfg.adversarial)
    optimizers["encoder_reg"].zero_grad(set_to_none=True)
    fool_code.backward()
    distributed.step(optimizers["encoder_reg"])
    return {"d_code": d_code.detach(), "fool_code": fool_code.detach()}
