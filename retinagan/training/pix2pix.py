"""Training the Stage 2 translator (pix2pix): vessel map + FOV mask (+ lesion maps, grade, look)
-> colour fundus photo.

One step: the generator minimises the adversarial loss plus lambda * L1 (lambda = 100); the
PatchGAN discriminator, on (vessel map, photo) pairs, maximises log D(v, r) + log(1 - D(v, G(v))).
Real pairs come from a prepared set (python -m retinagan prepare): DRIVE manual maps and
segmenter-made maps of the graded photos, laterality-normalised, photos blacked out
outside their field of view. Lesion maps come from the lesion detector run on each real photo
(retinagan.lesions.detect_lesions), so the translator learns to draw lesions where its lesion
channels say.

Grades: EyePACS photos carry their ICDR grade; IDRiD photos (all show DR, grade unknown) enter
with the "unknown" grade for the generator and, for the discriminator's auxiliary grade
classifier, as "some DR" (-log P(grade >= 1)); DRIVE photos as unknown and unclassified.
Class imbalance: batches are drawn so that each grade, the IDRiD photos and the DRIVE photos
are equally likely (balance_grades), not in proportion to their counts (grade 0 is 44 of 100).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from retinagan import distributed
from retinagan.checkpoint import save_model, save_training_state
from retinagan.errors import CheckpointError, DatasetError
from retinagan.lesions import detect_all
from retinagan.losses import discriminator_loss, generator_loss, grade_loss, lowpass_l1, masked_l1
from retinagan.models.pix2pix import DetailDiscriminator, PatchDiscriminator, Pix2PixConfig, Pix2PixGenerator, appearance_of, look_bank
from retinagan.pipeline import load_prepared
from retinagan.training.autoencoder import split_holdout
from retinagan.training.common import (EMA, LossSums, Schedule, bf16_units, cosine_lr, diff_augment, judge, layout, parse_disc_augment, pick_device, resume_run,
                                       seed_everything, step_context)
from retinagan.visual import save_grid


@dataclass
class Pix2PixTrainConfig:
    data: str = "runs/prepared-256.npz"  # prepared set (python -m retinagan prepare)
    output: str = "runs/pix2pix"  # run folder: stats.jsonl, samples/, states, checkpoint/
    model: Pix2PixConfig = field(default_factory=lambda: Pix2PixConfig(grades=5, appearance_dim=6, lesions=3))
    init: str = ""  # a pix2pix checkpoint to start the generator from (input channels it lacks start at zero)
    disc_channels: int = 32  # width of the PatchGAN
    disc_scales: int = 1  # > 1: more PatchGANs on the pair pooled 2x, 4x, ... (pix2pixHD): larger structures judged too
    detail_disc_weight: float = 0.0  # > 0: + a detail discriminator (luma detail, 38-px patches; models.pix2pix.DetailDiscriminator), its generator loss weighted this
    detail_sigma: float = 4.0  # the detail discriminator sees the luma minus its Gaussian blur of this sigma (px)
    disc_augment: str = ""  # DiffAugment of every pair the discriminator judges: any of "color,translation,cutout" ("" none)
    l1_weight: float = 100.0  # lambda
    l1_lowpass: float = 0.0  # > 0: the L1 compares the photos blurred (Gaussian, this sigma in px), leaving their grain to the discriminator
    l1_detail_weight: float = 1.0  # with l1_lowpass: + this x the full-resolution L1, so vessel edges still follow the map
    lesion_l1_weight: float = 1.0  # + this x the L1 over pixels near lesions (their own mean): small lesions matter
    adversarial: str = "bce"  # "bce" (pix2pix) or "lsgan"
    grade_weight: float = 1.0  # auxiliary grade classifier loss (AC-GAN); 0: no classifier, no projection
    balance_grades: bool = True  # draw each grade (and IDRiD, DRIVE) equally often
    holdout_every: int = 10  # every k-th sample (by id) is held out, as for the vessel models
    sources: str = ""  # e.g. "drive": train on these sources' pairs only (one camera); the held-out ids stay those of the whole set
    steps: int = 6000
    batch_size: int = 4
    lr: float = 2e-4
    ema_decay: float = 0.998
    time_limit_min: float = 0.0  # > 0: also stop when this many minutes have passed (schedule follows the clock)
    device: str = "auto"  # "auto" (the GPU when there is one), "cpu", "cuda", ...
    channels_last: bool = True  # NHWC activations: faster convolutions (bench/bench_train.py)
    foreach: bool = True  # multi-tensor optimiser updates
    bf16: bool = field(default_factory=bf16_units)  # bf16 autocast of the step; default on where the hardware has bf16 (bench/bench_train.py)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    state_every: int = 500
    resume: bool = True


@dataclass
class PairSet:
    """Tensors of a prepared set for Stage 2: inputs (N, 2 [+ 3 lesion maps], S, S) uint8 0/1,
    photos (N, 3, S, S) uint8."""

    inputs: torch.Tensor
    photos: torch.Tensor
    grades: torch.Tensor  # (N,) long, -1 unknown
    appearance: torch.Tensor  # (N, 6) float: each photo's look (appearance_of)
    dr_positive: torch.Tensor  # (N,) bool: grade unknown but known to show DR (IDRiD)
    groups: torch.Tensor  # (N,) long: the sampling group (grade 0-4; 5 DR of unknown grade; 6 other)
    ids: np.ndarray


def load_pairs(path: str, holdout_every: int, lesions: bool = False, sources: str = "") -> tuple[PairSet, PairSet, dict]:
    """lesions: add the detector's lesion maps of each photo as input channels 2-4. sources
    ("drive", "eyepacs,idrid"; "" all): keep these sources' pairs only, after the hold-out split
    of the whole set, so a one-camera model holds out the ids every other model does."""
    prepared = load_prepared(path)
    held = split_holdout(prepared.ids, holdout_every)
    if wanted := [s.strip() for s in sources.split(",") if s.strip()]:
        present = sorted(set(prepared.sources.tolist()))
        if unknown := [s for s in wanted if s not in present]:
            raise DatasetError(f"{path} has no pairs from {', '.join(unknown)} (its sources: {', '.join(present)})")
        keep = np.isin(prepared.sources, wanted)
        prepared, held = prepared.select(keep), held[keep]
        if held.all() or not held.any():
            raise DatasetError(f"{path}: the {int(keep.sum())} pairs from {sources} leave {'nothing to train on' if held.all() else 'none held out'} (--holdout-every {holdout_every})")
    fov = prepared.fov.astype(np.uint8)
    channels = [prepared.vessels.astype(np.uint8)[:, None], fov[:, None]]
    if lesions:
        channels.append(detect_all(prepared.images, prepared.fov, prepared.vessels).astype(np.uint8))
    inputs = torch.from_numpy(np.concatenate(channels, axis=1))
    photos = torch.from_numpy((prepared.images * fov[..., None]).transpose(0, 3, 1, 2).copy())  # black outside the FOV
    grades = torch.from_numpy(prepared.grades.astype(np.int64))
    looks = appearance_of(photos, torch.from_numpy(prepared.fov))
    dr_positive = torch.from_numpy((prepared.sources == "idrid") & (prepared.grades < 0))
    groups = torch.where(grades >= 0, grades, torch.where(dr_positive, 5, 6))
    part = lambda keep: PairSet(*(t[torch.from_numpy(keep)] for t in (inputs, photos, grades, looks, dr_positive, groups)), prepared.ids[keep])  # noqa: E731
    sources = {str(s): int((prepared.sources == s).sum()) for s in np.unique(prepared.sources)}
    info = {"train": int((~held).sum()), "holdout": int(held.sum()), "sources": sources}
    return part(~held), part(held), info


def to_float(inputs: torch.Tensor, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return inputs.float(), photos.float() / 127.5 - 1


def augment_pairs(inputs: torch.Tensor, photos: torch.Tensor, generator: torch.Generator):
    """Random top-bottom flips of whole pairs (left-right would undo the laterality step).

    The draws cover the global batch; this process keeps its slice (see retinagan.distributed)."""
    flip = distributed.shard(torch.rand(len(inputs) * distributed.WORLD.size, generator=generator) < 0.5).to(inputs.device)
    inputs = torch.where(flip[:, None, None, None], inputs.flip(2), inputs)
    photos = torch.where(flip[:, None, None, None], photos.flip(2), photos)
    return inputs, photos


def to_uint8(photos: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) in [-1, 1] -> (B, S, S, 3) uint8."""
    return ((photos.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def translate(generator: Pix2PixGenerator, pairs: "PairSet", count: int | None = None, batch: int = 8) -> np.ndarray:
    """The generator's photos of a pair set's maps, each with its own photo's grade and look."""
    out, device = [], next(generator.parameters()).device
    for i in range(0, count or len(pairs.inputs), batch):
        part = slice(i, min(i + batch, count or len(pairs.inputs)))
        inputs, grade, look = on_device(device, pairs.inputs[part].float(), *conditions(generator.config, pairs, part))
        out.append(to_uint8(generator(inputs, grade, look)))
    return np.concatenate(out)


def on_device(device: torch.device, *tensors: torch.Tensor | None) -> tuple:
    """The tensors moved to device; None stays None (a condition the model does not take)."""
    return tuple(t if t is None else t.to(device) for t in tensors)


def conditions(config: Pix2PixConfig, pairs: "PairSet", index) -> tuple:
    """(grade, appearance) inputs for these pairs, None where the model takes no such input."""
    grade = pairs.grades[index] if config.grades > 0 else None
    look = pairs.appearance[index] if config.appearance_dim > 0 else None
    return grade, look


def sampling_weights(groups: torch.Tensor, balance: bool) -> torch.Tensor:
    """Per-pair draw weights: each group present equally likely (balance), or uniform."""
    if not balance:
        return torch.ones(len(groups))
    counts = torch.bincount(groups, minlength=int(groups.max()) + 1).float()
    return 1.0 / counts[groups]


def start_generator(cfg: Pix2PixTrainConfig) -> tuple[Pix2PixGenerator, str]:
    """A new generator, or one starting from cfg.init: its weights loaded into a model with this
    run's config; first-layer weights for input channels the checkpoint lacks (lesion maps) start
    at zero, so the start behaves exactly like the checkpoint."""
    generator = Pix2PixGenerator(cfg.model)
    if not cfg.init:
        return generator, "scratch"
    from retinagan.checkpoint import load_model

    source, _ = load_model(cfg.init, expected_kind="pix2pix")
    state = {k: v.float() for k, v in source.state_dict().items()}
    for key, value in generator.state_dict().items():  # texture noise and a refiner the checkpoint lacks start at zero
        if key.startswith(("noise_strength.", "refine.")) and key not in state:
            state[key] = value
    first = "down.0.0.weight"
    have, want = state[first], generator.state_dict()[first]
    if have.shape != want.shape:
        if have.shape[1] > want.shape[1] or have.shape[0] != want.shape[0]:
            raise CheckpointError(f"--init {cfg.init}: its first layer {tuple(have.shape)} does not fit {tuple(want.shape)}")
        state[first] = torch.cat([have, torch.zeros(want.shape[0], want.shape[1] - have.shape[1], *want.shape[2:])], dim=1)
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:  # other widths, depth, conditions
        raise CheckpointError(f"--init {cfg.init}: does not fit this run's --model settings ({str(exc).splitlines()[0]})") from None
    return generator, cfg.init


def train_pix2pix(cfg: Pix2PixTrainConfig) -> Path:
    if cfg.model.appearance_dim not in (0, 6):
        raise ValueError("appearance_dim must be 0 or 6 (per-channel mean and spread)")
    parse_disc_augment(cfg.disc_augment)  # a typo fails here, not at the first step
    if cfg.model.lesions not in (0, 3):
        raise ValueError("lesions must be 0 or 3 (microaneurysm, haemorrhage, exudate maps)")
    if cfg.l1_lowpass < 0 or cfg.l1_detail_weight < 0:
        raise ValueError("l1_lowpass and l1_detail_weight must be >= 0")
    if cfg.detail_disc_weight < 0 or cfg.detail_sigma <= 0:
        raise ValueError("detail_disc_weight must be >= 0 and detail_sigma > 0")
    seed_everything(cfg.seed)
    world, device = distributed.setup(pick_device(cfg.device))
    distributed.local_batch(cfg.batch_size)
    out = Path(cfg.output)
    train, holdout, data_info = load_pairs(cfg.data, cfg.holdout_every, lesions=cfg.model.lesions > 0, sources=cfg.sources)
    generator, started_from = start_generator(cfg)
    generator = generator.to(device, memory_format=layout(cfg.channels_last))
    disc_grades = cfg.model.grades if cfg.grade_weight > 0 else 0
    disc = PatchDiscriminator(1 + cfg.model.lesions + cfg.model.out_channels, cfg.disc_channels, disc_grades, cfg.disc_scales)
    disc = disc.to(device, memory_format=layout(cfg.channels_last))
    detail_disc = None
    if cfg.detail_disc_weight > 0:
        detail_disc = DetailDiscriminator(1 + cfg.model.lesions, cfg.disc_channels, cfg.detail_sigma)
        detail_disc = detail_disc.to(device, memory_format=layout(cfg.channels_last))
    weights = sampling_weights(train.groups, cfg.balance_grades)
    if world.size > 1:
        distributed.global_batchnorm(generator)
        distributed.global_batchnorm(disc)
        distributed.broadcast_parameters(generator, disc)
        if detail_disc is not None:
            distributed.global_batchnorm(detail_disc)
            distributed.broadcast_parameters(detail_disc)
    ema = EMA(generator, cfg.ema_decay)
    optimizers = {
        "generator": torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=(0.5, 0.999), foreach=cfg.foreach),
        "disc": torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999), foreach=cfg.foreach),
    }
    modules = {"generator": generator, "ema": ema.model, "disc": disc}
    if detail_disc is not None:
        optimizers["detail_disc"] = torch.optim.Adam(detail_disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999), foreach=cfg.foreach)
        modules["detail_disc"] = detail_disc
    generators = {"data": torch.Generator().manual_seed(cfg.seed)}
    start_step, elapsed, stats = resume_run(out, cfg.resume, modules, optimizers, generators)
    started, sums = time.time() - elapsed, LossSums(cfg.log_every)
    schedule, done, scored_at = Schedule(cfg.steps, cfg.time_limit_min, started), start_step, None
    steps = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc="pix2pix", unit="step", disable=not world.main)
    for step in (bar := steps):
        position = schedule.position(step, device)
        if position >= cfg.steps:
            break
        for optimizer in optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(position, cfg.steps, cfg.lr)
        index = distributed.shard(torch.multinomial(weights, cfg.batch_size, replacement=True, generator=generators["data"]))
        batch = (train.inputs[index].to(device, non_blocking=True), train.photos[index].to(device, non_blocking=True))
        inputs, photos = augment_pairs(*to_float(*batch), generators["data"])
        grades, looks = on_device(device, *conditions(cfg.model, train, index))  # a top-bottom flip keeps the look
        with step_context(cfg.bf16, device):
            losses = train_step(cfg, generator, disc, optimizers, inputs.contiguous(memory_format=layout(cfg.channels_last)), photos, grades, looks,
                                train.dr_positive[index].to(device), detail_disc)
        ema.update(generator, step + 1)
        sums.add(losses)  # tensors: no host sync until logging
        done = step + 1
        if done % cfg.log_every == 0:
            row = sums.take()
            bar.set_postfix(l1=f"{row['l1']:.3f}")
            stats.write(step=done, seconds=round(time.time() - started, 1), **row)
        if world.main and done % cfg.sample_every == 0 and done < cfg.steps:
            final_l1, scored_at = snapshot(out, done, ema.model, holdout, stats), done
        if world.main and done % cfg.state_every == 0 and done < cfg.steps:
            save_training_state(out, done, modules, optimizers, generators, extra={"wall_time_s": time.time() - started})
    if not world.main:  # rank 0 evaluates and writes the checkpoint
        distributed.teardown()
        return out / "checkpoint"
    if done < cfg.steps:
        print(f"time limit reached after {done} steps")
    if scored_at != done:  # a clock-stopped run may end on a sample step, already scored
        final_l1 = snapshot(out, done, ema.model, holdout, stats)
    info = dict(
        **look_bank(train.appearance.numpy(), train.inputs[:, 1].numpy()),  # looks to sample from, with their FOV shapes
        training_data=f"prepared set {cfg.data}: {data_info}; lesion maps: {'detector (retinagan.lesions.detect_lesions)' if cfg.model.lesions else 'none'}",
        started_from=started_from,
        steps=done,
        wall_time_s=round(time.time() - started, 1),
        device=str(device),
        processes=world.size,
        train_config=asdict(cfg),
        metrics={"holdout_l1": final_l1},
    )
    folder = save_model(out / "checkpoint", ema.model, "pix2pix", **info)
    distributed.teardown()
    return folder


def snapshot(out: Path, step: int, generator: Pix2PixGenerator, holdout: PairSet, stats) -> float:
    """Sample grid (held-out maps, their translations, the real photos); logs and returns the held-out L1."""
    show = holdout.inputs[:8]
    fakes = translate(generator, holdout, count=len(show)).astype(np.float32) / 255
    reals = holdout.photos[:8].permute(0, 2, 3, 1).numpy().astype(np.float32) / 255
    vessels = np.repeat(show[:, :1].permute(0, 2, 3, 1).numpy().astype(np.float32), 3, axis=3)
    save_grid(out / "samples" / f"step-{step:06d}.png", np.concatenate([vessels, fakes, reals]), columns=len(show))
    l1 = holdout_l1(generator, holdout)
    stats.write(step=step, holdout_l1=l1)
    return l1


@torch.no_grad()
def holdout_l1(generator: Pix2PixGenerator, holdout: PairSet) -> float:
    """Mean absolute error (0-255 scale) between translated held-out maps and their real photos."""
    fakes = translate(generator, holdout)
    reals = holdout.photos.permute(0, 2, 3, 1).numpy()
    return float(np.abs(fakes.astype(np.float32) - reals).mean())


def train_step(cfg, generator, disc, optimizers, inputs, photos, grades, looks=None, dr_positive=None, detail_disc=None) -> dict[str, torch.Tensor]:
    total, fake, pairs, out = generator_side(cfg, generator, disc, inputs, photos, grades, looks, cfg.adversarial, detail_disc=detail_disc)
    optimizers["generator"].zero_grad(set_to_none=True)
    total.backward()
    distributed.step(optimizers["generator"])
    d_total, d_out = discriminator_side(cfg, disc, pairs, photos, fake, grades, dr_positive, cfg.adversarial, detail_disc=detail_disc)
    judges = ["disc"] + (["detail_disc"] if detail_disc is not None else [])
    for name in judges:
        optimizers[name].zero_grad(set_to_none=True)
    d_total.backward()
    for name in judges:
        distributed.step(optimizers[name])
    return {**out, **d_out}


def generator_side(cfg, generator, disc, inputs, photos, grades, looks, adversarial: str, drawn=None, detail_disc=None) -> tuple:
    """The translator's generator-side loss: fool the discriminator, stay close to the real photo
    (L1, low-pass and lesion terms as cfg asks), look like the asked grade.

    drawn: a (B, 1, S, S) tree the translator draws from in place of the inputs' vessel map (end
    to end: the autoencoder's reconstruction); the real pair keeps the real map. cfg carries
    l1_weight, l1_lowpass, l1_detail_weight, lesion_l1_weight and grade_weight (and
    detail_disc_weight when a detail discriminator is given).
    -> (loss to minimise, the photos, the (real, drawn) conditions the discriminator judges, logs)."""
    real_condition = condition = torch.cat([inputs[:, :1], inputs[:, 2:]], dim=1)  # vessel map (+ lesion maps); the FOV shows in the photo
    if drawn is not None:
        inputs = torch.cat([drawn.to(inputs.dtype), inputs[:, 1:]], dim=1)
        condition = torch.cat([inputs[:, :1], inputs[:, 2:]], dim=1)
    grades_d = grades if disc.grades > 0 else None
    fake = generator(inputs, grades, looks)
    disc.requires_grad_(False)
    _, (fake_logits, fake_class) = judge(disc, (*shown(cfg, real_condition, photos), grades_d), (*shown(cfg, condition, fake), grades_d), classify=True)
    fool = generator_loss(fake_logits, adversarial)
    detail_logs = {}
    if detail_disc is not None:  # the luma detail judged on its own (models.pix2pix.DetailDiscriminator)
        detail_disc.requires_grad_(False)
        _, fake_detail = judge(detail_disc, (real_condition, photos), (condition, fake))
        detail_logs["fool_detail"] = generator_loss(fake_detail, adversarial)
    l1 = F.l1_loss(fake.float(), photos)
    l1_fit = l1
    if cfg.l1_lowpass > 0:
        l1_fit = lowpass_l1(fake.float(), photos, cfg.l1_lowpass) + cfg.l1_detail_weight * l1
    lesion_l1 = torch.zeros((), device=fake.device)
    if inputs.shape[1] > 2 and cfg.lesion_l1_weight > 0:  # lesion maps present: the pixels around them again
        near = F.max_pool2d(inputs[:, 2:].amax(dim=1, keepdim=True).float(), 5, 1, 2)
        lesion_l1 = masked_l1(fake, photos, near)
    g_grade = grade_loss(fake_class, grades) if fake_class is not None else torch.zeros((), device=fake.device)
    total = fool + cfg.l1_weight * (l1_fit + cfg.lesion_l1_weight * lesion_l1) + cfg.grade_weight * g_grade
    if detail_logs:
        total = total + cfg.detail_disc_weight * detail_logs["fool_detail"]
    logs = {"fool": fool.detach(), "l1": l1.detach(), "lesion_l1": lesion_l1.detach(), "g_grade": g_grade.detach(),
            **{name: value.detach() for name, value in detail_logs.items()}}
    return total, fake, (real_condition, condition), logs


def shown(cfg, condition: torch.Tensor, photo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A (condition, photo) pair as the discriminator sees it: augmented when cfg.disc_augment names a policy."""
    policy = parse_disc_augment(cfg.disc_augment)
    return diff_augment(condition, photo.float(), policy) if policy else (condition, photo)


def discriminator_side(cfg, disc, pairs: tuple, photos, fake, grades, dr_positive, adversarial: str, detail_disc=None) -> tuple:
    """The discriminator's loss: real pairs vs translated pairs (halved, as in pix2pix), plus the
    grade of the real photos (cfg.grade_weight). pairs: generator_side's (real, drawn) conditions.
    -> (loss to minimise, logs)."""
    real_condition, condition = pairs
    grades_d = grades if disc.grades > 0 else None
    disc.requires_grad_(True)
    (real_logits, real_class), (fake_logits, _) = judge(disc, (*shown(cfg, real_condition, photos), grades_d),
                                                        (*shown(cfg, condition.detach(), fake.detach()), grades_d), classify=True)
    d_loss = 0.5 * discriminator_loss(real_logits, fake_logits, adversarial)
    d_grade = grade_loss(real_class, grades, dr_positive) if real_class is not None else torch.zeros((), device=fake.device)
    total, logs = d_loss + cfg.grade_weight * d_grade, {"d": d_loss.detach(), "d_grade": d_grade.detach()}
    if detail_disc is not None:  # its own parameters: summed into one backward, stepped by its own optimiser
        detail_disc.requires_grad_(True)
        real_detail, fake_detail = judge(detail_disc, (real_condition, photos), (condition.detach(), fake.detach()))
        d_detail = 0.5 * discriminator_loss(real_detail, fake_detail, adversarial)
        total, logs["d_detail"] = total + d_detail, d_detail.detach()
    return total, logs
