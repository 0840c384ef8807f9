"""Training the photo detailer (retinagan.models.photodetail) on real fundus photos.

Pairs: each real photo of a prepared set (the translator's training split: the same held-out ids
stay out, so photos of held-out trees stay a fair test) with its own vessel map and FOV. One
step: a batch of photos (whole, or random crops), each flipped left-right and top-bottom at
random (flips keep the pixel grid's axes, which a camera's grain may follow), split into the
blur kept and the detail drawn, a time t per photo, the detail noised to t, and the squared error
of the predicted v inside the FOV; half the steps first make an estimate without gradients and
feed it back (self-conditioning). All photos stay on the device: on a GPU a step is one batch of
tensor work.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from retinagan.checkpoint import save_model, save_training_state
from retinagan.models.detail import alpha_bar
from retinagan.models.photodetail import DetailCritic, PhotoDetailConfig, PhotoDetailer, split_photo
from retinagan.pipeline import load_prepared
from retinagan.training.autoencoder import split_holdout
from retinagan.training.common import EMA, LossSums, cosine_lr, Schedule, bf16_units, pick_device, resume_run, seed_everything, step_context
from retinagan.visual import save_grid


@dataclass
class PhotoDetailTrainConfig:
    data: str = "runs/prepared-256.npz"  # a prepared set (`python -m retinagan prepare`)
    output: str = "runs/photodetail"  # run folder: stats.jsonl, samples/, states, checkpoint/
    model: PhotoDetailConfig = field(default_factory=PhotoDetailConfig)
    init: str = ""  # a photodetail checkpoint to start from (its model settings replace --model.*)
    holdout_every: int = 10  # every k-th photo (by id) is held out, as for the translator
    steps: int = 20000
    batch_size: int = 8
    crop: int = 0  # side of random training crops; 0: whole photos
    lr: float = 2e-4  # AdamW, no weight decay; cosine decay to a tenth over the run
    ema_decay: float = 0.999
    self_condition: float = 0.5  # share of steps that feed back a first estimate
    # Adversarial fine-tune (> 0, from --init): a DetailCritic judges the detail drawn in
    # adversarial_steps DDIM steps (backpropagated through) against real photos' own detail, and
    # the generator's loss adds this weight times its hinge loss to the diffusion loss. The
    # optimisers are then Adam with betas (0, 0.99) at a constant lr (the critic's: critic_lr).
    adversarial_weight: float = 0.0
    adversarial_steps: int = 3
    critic_lr: float = 2e-4
    critic_width: int = 32
    critic_layers: int = 3
    critic_warmup: int = 0  # the first this many steps train the critic alone (the detailer, and its EMA, unchanged)
    critic_steps: int = 1  # critic updates per step (on the same real and drawn detail)
    time_limit_min: float = 0.0  # > 0: also stop when this many minutes have passed
    device: str = "auto"
    bf16: bool = field(default_factory=bf16_units)
    seed: int = 0
    log_every: int = 100
    sample_every: int = 2000  # grid: held-out photos, their blur, the blur redrawn with detail
    state_every: int = 2000
    # comma-separated steps at which the EMA weights are also saved, float16 as shipped, in
    # output/snapshots/step-NNNNNN: an adversarial fine-tune's gain comes early and fades, so
    # the step to ship is picked afterwards (scripts/photodetail_steps.py scores several)
    snapshot_steps: str = ""
    resume: bool = True

    def snapshots(self) -> set[int]:
        parts = [s for s in self.snapshot_steps.replace(" ", "").split(",") if s]
        if not all(s.isdigit() and int(s) > 0 for s in parts):
            raise ValueError(f"--snapshot-steps takes step numbers separated by commas (100,200,400), not {self.snapshot_steps!r}")
        return {int(s) for s in parts}


def training_photos(cfg: PhotoDetailTrainConfig, device: torch.device) -> tuple[torch.Tensor, ...]:
    """-> photos in [-1, 1] (N, 3, S, S), vessel maps and FOVs (N, 1, S, S), on the device, and
    the held-out photos' arrays (uint8 photos, maps, FOVs) for the sample grid."""
    prepared = load_prepared(cfg.data)
    side = prepared.images.shape[1]
    if side != cfg.model.image_size:
        raise ValueError(f"{cfg.data} holds {side}-px photos; the photo detailer is configured for {cfg.model.image_size}")
    held = split_holdout(prepared.ids, cfg.holdout_every)
    keep = ~held
    photos = torch.from_numpy(prepared.images[keep]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    as_maps = lambda a: torch.from_numpy(np.asarray(a, np.float32))[:, None]  # noqa: E731
    tensors = tuple(t.to(device) for t in (photos, as_maps(prepared.vessels[keep]), as_maps(prepared.fov[keep])))
    return (*tensors, (prepared.images[held][:4], prepared.vessels[held][:4], prepared.fov[held][:4]), int(keep.sum()))


def batch_of(arrays: tuple[torch.Tensor, ...], count: int, crop: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The same random picks, crops and flips of several aligned (N, C, S, S) tensors."""
    n, side = len(arrays[0]), arrays[0].shape[-1]
    index = torch.randint(n, (count,), generator=generator)
    flips = torch.rand(count, 2, generator=generator) < 0.5
    crop = crop or side
    ys, xs = (torch.randint(side - crop + 1, (count,), generator=generator) for _ in range(2))
    rows = (ys[:, None] + torch.arange(crop)[None]).to(arrays[0].device)
    cols = (xs[:, None] + torch.arange(crop)[None]).to(arrays[0].device)
    flip_x, flip_y = flips[:, 0].to(arrays[0].device), flips[:, 1].to(arrays[0].device)
    rows = torch.where(flip_y[:, None], rows.flip(1), rows)
    cols = torch.where(flip_x[:, None], cols.flip(1), cols)
    index = index.to(arrays[0].device)
    return [a[index[:, None, None, None], torch.arange(a.shape[1], device=a.device)[None, :, None, None],
              rows[:, None, :, None], cols[:, None, None, :]] for a in arrays]


def diffusion_loss(model: PhotoDetailer, coarse, detail, vessels, fov, cfg: PhotoDetailTrainConfig, generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """Mean squared error of the predicted v inside the FOV, the detail noised to a random time."""
    clean = detail * cfg.model.scale
    t = torch.rand(len(clean), generator=generator).to(device)
    noise = torch.randn(clean.shape, generator=generator).to(device)
    ab = alpha_bar(t, cfg.model.min_alpha)[:, None, None, None]
    x = ab.sqrt() * clean + (1 - ab).sqrt() * noise
    target = ab.sqrt() * noise - (1 - ab).sqrt() * clean
    estimate = torch.zeros_like(x)
    if torch.rand((), generator=generator).item() < cfg.self_condition:
        with torch.no_grad(), step_context(cfg.bf16, device):
            v = model(model.inputs(x, coarse, vessels, fov, estimate), t).float()
        estimate = ab.sqrt() * x - (1 - ab).sqrt() * v
    with step_context(cfg.bf16, device):
        v = model(model.inputs(x, coarse, vessels, fov, estimate), t)
    return ((v.float() - target) ** 2 * fov).sum() / (fov.sum() * 3).clamp_min(1)


def train_step(model: PhotoDetailer, optimizer, photos, vessels, fov, cfg: PhotoDetailTrainConfig, generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
    """One optimiser step; returns the detached loss (mean squared error of v inside the FOV)."""
    coarse, detail = split_photo(photos, fov, cfg.model.sigma)
    loss = diffusion_loss(model, coarse, detail, vessels, fov, cfg, generator, device)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def adversarial_step(model: PhotoDetailer, critic: DetailCritic, optimizers: dict, photos, vessels, fov,
                     cfg: PhotoDetailTrainConfig, generator: torch.Generator, device: torch.device,
                     critic_only: bool = False) -> dict[str, torch.Tensor]:
    """One step of the adversarial fine-tune: the critic (hinge) on real detail against the detail
    drawn from seeded noise in cfg.adversarial_steps steps, then (unless critic_only) the detailer
    on the diffusion loss plus adversarial_weight times its hinge loss through every sampling step."""
    coarse, detail = split_photo(photos, fov, cfg.model.sigma)
    real = detail * cfg.model.scale
    noise = torch.randn(real.shape, generator=generator).to(device)
    with torch.no_grad() if critic_only else contextlib.nullcontext():
        fake = model.sample(coarse, vessels, fov, noise, cfg.adversarial_steps, step_context(cfg.bf16, device)) * fov
    for _ in range(cfg.critic_steps):
        critic_loss = (torch.relu(1 - critic(coarse, vessels, fov, real)).mean()
                       + torch.relu(1 + critic(coarse, vessels, fov, fake.detach())).mean())
        optimizers["critic"].zero_grad(set_to_none=True)
        critic_loss.backward()
        optimizers["critic"].step()
    if critic_only:
        return {"critic": critic_loss.detach()}
    adversarial = -critic(coarse, vessels, fov, fake).mean()
    loss = diffusion_loss(model, coarse, detail, vessels, fov, cfg, generator, device)
    optimizers["model"].zero_grad(set_to_none=True)
    (loss + cfg.adversarial_weight * adversarial).backward()
    optimizers["model"].step()
    return {"loss": loss.detach(), "adversarial": adversarial.detach(), "critic": critic_loss.detach()}


def train_photodetail(cfg: PhotoDetailTrainConfig) -> Path:
    if cfg.adversarial_weight > 0 and not cfg.init:
        raise ValueError("--adversarial-weight fine-tunes a trained photo detailer: give it with --init")
    if cfg.critic_steps < 1 or cfg.critic_warmup < 0:
        raise ValueError("--critic-steps must be at least 1 and --critic-warmup at least 0")
    cfg.snapshots()  # a malformed --snapshot-steps fails here, not after hours of training
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(cfg.output)
    if cfg.init:
        from retinagan.checkpoint import load_model

        model, _ = load_model(cfg.init, expected_kind="photodetail", device=device)
        cfg.model = model.config
        model.train().requires_grad_(True)
    else:
        model = PhotoDetailer(cfg.model).to(device)
    photos, vessels, fovs, preview, count = training_photos(cfg, device)
    ema = EMA(model, cfg.ema_decay)
    generators = {"data": torch.Generator().manual_seed(cfg.seed)}
    modules = {"model": model, "ema": ema.model}
    adversarial = cfg.adversarial_weight > 0
    if adversarial:
        critic = modules["critic"] = DetailCritic(cfg.critic_width, cfg.critic_layers).to(device)
        optimizers = {"model": torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.0, 0.99)),
                      "critic": torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, betas=(0.0, 0.99))}
    else:
        optimizers = {"model": torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)}
    start_step, elapsed, stats = resume_run(out, cfg.resume, modules, optimizers, generators)
    started, sums = time.time() - elapsed, LossSums(cfg.log_every)
    schedule, done = Schedule(cfg.steps, cfg.time_limit_min, started), start_step
    snapshots = cfg.snapshots()

    def info(steps: int) -> dict:
        return dict(
            training_data=(f"{count} real fundus photos of {cfg.data} (the translator's training split: every {cfg.holdout_every}th id "
                           "held out), each with its vessel map and FOV; DRIVE training, EyePACS and IDRiD: non-commercial research use"),
            steps=steps,
            init=cfg.init or None,
            wall_time_s=round(time.time() - started, 1),
            device=str(device),
            train_config=asdict(cfg),
        )

    for step in (bar := tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc="photodetail", unit="step")):
        position = schedule.position(step)
        if position >= cfg.steps:
            break
        batch = batch_of((photos, vessels, fovs), cfg.batch_size, cfg.crop, generators["data"])
        if adversarial:  # a fine-tune: constant lr
            sums.add(adversarial_step(model, critic, optimizers, *batch, cfg, generators["data"], device,
                                      critic_only=step < cfg.critic_warmup))
        else:
            for group in optimizers["model"].param_groups:  # cosine from lr to lr / 10, no warm-up
                group["lr"] = cosine_lr(position, cfg.steps, cfg.lr, warmup=0, floor=0.1)
            sums.add({"loss": train_step(model, optimizers["model"], *batch, cfg, generators["data"], device)})
        ema.update(model, step + 1)
        done = step + 1
        if done % cfg.log_every == 0:
            row = sums.take()
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()})
            stats.write(step=done, seconds=round(time.time() - started, 1), **row)
        if done % cfg.sample_every == 0:
            save_preview(out / "samples" / f"step-{done:06d}.png", ema.model, preview, cfg.bf16)
        if done in snapshots:
            save_model(out / "snapshots" / f"step-{done:06d}", ema.model, "photodetail", half=True, **info(done))
        if done % cfg.state_every == 0 and done < cfg.steps:
            save_training_state(out, done, modules, optimizers, generators, extra={"wall_time_s": time.time() - started})
    save_preview(out / "samples" / "final.png", ema.model, preview, cfg.bf16)
    return save_model(out / "checkpoint", ema.model, "photodetail", **info(done))


def save_preview(path: Path, model: PhotoDetailer, preview: tuple[np.ndarray, ...], bf16: bool) -> None:
    """Held-out photos (never trained on), their coarse part, and the coarse part redrawn with detail."""
    photos, vessels, fovs = preview
    rgb = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1
    coarse, _ = split_photo(rgb, torch.from_numpy(fovs[:, None].astype(np.float32)), model.config.sigma)
    blurred = ((coarse.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    drawn = model.draw(photos, vessels, fovs, list(range(len(photos))), bf16=bf16, batch=len(photos))
    save_grid(path, np.concatenate([photos, blurred, drawn]).astype(np.float32) / 255, columns=len(photos))
