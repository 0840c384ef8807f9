"""Both stages trained together (Costa et al., IEEE TMI 2018), or side by side as a control.

Each step takes a batch of real pairs (vessel map v, FOV mask, photo r) and runs:
  1. generator side, one backward pass over the summed losses:
     gamma * reconstruction(AE(v), v) + lambda * |G(d) - r|_1 + fool(D_photo(d, G(d))),
     where d is the tree the translator draws from. Joint (--joint, the default): d is the
     autoencoder's reconstruction of v, binarised in the forward pass as at inference, with
     a straight-through gradient, so the photo losses reach the vessel decoder and encoder.
     Side by side (--no-joint): d = v, the photo losses stop at the translator, and this is
     the sequential (pipelined) recipe with the same data, batches and steps: the control;
  2. code discriminator, prior samples vs codes, then the encoder alone fools it (the AAE's
     regularisation phase, as in training/autoencoder.py);
  3. photo discriminator: real pairs (v, r) vs drawn pairs (d, G(d)).
The translator's losses and discriminator are the pix2pix loop's own (training/pix2pix.py:
generator_side, discriminator_side): lesion-map inputs, the grade classifier, the multi-scale
PatchGAN and the low-pass L1 work here as there, with the same flags. Both stages can start
from trained checkpoints (--init-vessels, --init-translator): their configs then replace
--model and --translator-model (a translator that takes lesion maps gets the detector's maps
of the real photos, as in its own loop; the drawn tree keeps the real tree's lesion maps). The
run writes checkpoint/vessels (an AAE) and checkpoint/translator (a pix2pix), which every other
command takes as they are.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from retinagan import distributed
from retinagan.checkpoint import save_model, save_training_state
from retinagan.losses import reconstruction_loss
from retinagan.models.autoencoder import AutoencoderConfig, CodeDiscriminator, VesselAutoencoder
from retinagan.models.pix2pix import PatchDiscriminator, Pix2PixConfig, Pix2PixGenerator, look_bank
from retinagan.training.autoencoder import code_phases, reconstruction_dice
from retinagan.training.common import EMA, LossSums, Schedule, bf16_units, cosine_lr, drawn_maps, freeze, layout, parse_disc_augment, pick_device, resume_run, seed_everything, start_model, step_context
from retinagan.training.pix2pix import (augment_pairs, conditions, discriminator_side, generator_side, holdout_l1, load_pairs, on_device,
                                        sampling_weights, to_float, to_uint8)
from retinagan.visual import save_grid


@dataclass
class End2EndTrainConfig:
    data: str = "runs/prepared-256.npz"  # prepared set (python -m retinagan prepare)
    output: str = "runs/end2end"  # run folder: stats.jsonl, samples/, states, checkpoint/{vessels,translator}
    joint: bool = True  # photo losses reach the vessel autoencoder; --no-joint: the side-by-side control
    real_tree_share: float = 0.0  # joint: this share of each batch is painted from its real tree, the rest from the reconstruction
    init_vessels: str = ""  # an aae checkpoint to start the autoencoder from (its config replaces --model)
    init_translator: str = ""  # a pix2pix checkpoint to start the translator from
    freeze: str = ""  # comma-separated parameter-name prefixes kept as they start, each "vessels:NAME" or "translator:NAME" (see freeze())
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    translator_model: Pix2PixConfig = field(default_factory=lambda: Pix2PixConfig(appearance_dim=6))
    adversarial: str = "lsgan"  # the code discriminator's loss: "bce" or "lsgan"
    photo_adversarial: str = "bce"  # the photo discriminator's loss (pix2pix: "bce")
    reconstruction: str = "bce_dice"
    recon_weight: float = 100.0  # gamma
    l1_weight: float = 100.0  # lambda
    code_weight: float = 1.0
    disc_channels: int = 32
    disc_scales: int = 1  # > 1: more PatchGANs on the pair pooled 2x, 4x (as pix2pix --disc-scales)
    disc_augment: str = ""  # as pix2pix --disc-augment: DiffAugment of the pairs the photo discriminator judges
    l1_lowpass: float = 0.0  # as pix2pix: > 0 compares the photos blurred (this sigma in px)
    l1_detail_weight: float = 1.0  # as pix2pix: with l1_lowpass, + this x the full-resolution L1
    lesion_l1_weight: float = 1.0  # as pix2pix: + this x the L1 near lesions (translators with lesion maps)
    grade_weight: float = 1.0  # as pix2pix: the grade classifier on the photo discriminator (translators with grades)
    balance_grades: bool = True  # as pix2pix: draw each grade (and IDRiD, DRIVE) equally often
    holdout_every: int = 10  # every k-th sample (by id) held out, as for the separate loops
    steps: int = 4000
    batch_size: int = 4
    lr: float = 2e-4  # translator and discriminators (pix2pix's)
    ae_lr: float = 1e-3  # autoencoder (the AAE loop's); a fine-tune from --init-vessels may want less
    ema_decay: float = 0.998
    time_limit_min: float = 0.0  # > 0: also stop when this many minutes have passed
    device: str = "auto"
    channels_last: bool = True
    foreach: bool = True
    bf16: bool = field(default_factory=bf16_units)  # bf16 autocast of the step; default on where the hardware has bf16 (bench/bench_train.py)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    state_every: int = 500
    resume: bool = True


def train_end2end(cfg: End2EndTrainConfig) -> Path:
    parse_disc_augment(cfg.disc_augment)
    if not 0 <= cfg.real_tree_share <= 1:
        raise ValueError(f"real_tree_share must be within 0-1, not {cfg.real_tree_share}")
    seed_everything(cfg.seed)
    world, device = distributed.setup(pick_device(cfg.device))
    distributed.local_batch(cfg.batch_size)
    out = Path(cfg.output)
    model, _ = start_model(cfg.init_vessels, "aae", cfg.model, VesselAutoencoder, device)
    translator, translator_config = start_model(cfg.init_translator, "pix2pix", cfg.translator_model, Pix2PixGenerator, device)
    cfg.model, cfg.translator_model = model.config, translator.config
    if cfg.model.image_size != cfg.translator_model.image_size:
        raise ValueError(f"the autoencoder works at {cfg.model.image_size} px, the translator at {cfg.translator_model.image_size} px")
    if cfg.translator_model.appearance_dim not in (0, 6):
        raise ValueError("the translator's appearance_dim must be 0 or 6")
    if cfg.translator_model.lesions not in (0, 3):
        raise ValueError("the translator's lesions must be 0 or 3 (microaneurysm, haemorrhage, exudate maps)")
    if frozen := freeze({"vessels": model, "translator": translator}, cfg.freeze):
        print(f"frozen: {frozen:,} parameters ({cfg.freeze})")
    train, holdout, data_info = load_pairs(cfg.data, cfg.holdout_every, lesions=cfg.translator_model.lesions > 0)
    memory = layout(cfg.channels_last)
    model, translator = model.to(memory_format=memory), translator.to(memory_format=memory)
    code_disc = CodeDiscriminator(cfg.model.latent_dim).to(device)
    disc_grades = cfg.translator_model.grades if cfg.grade_weight > 0 else 0
    photo_disc = PatchDiscriminator(1 + cfg.translator_model.lesions + cfg.translator_model.out_channels, cfg.disc_channels,
                                    disc_grades, cfg.disc_scales).to(device, memory_format=memory)
    weights = sampling_weights(train.groups, cfg.balance_grades)
    if world.size > 1:
        for module in (model, translator, photo_disc):
            distributed.global_batchnorm(module)
        distributed.broadcast_parameters(model, translator, code_disc, photo_disc)
    ema_vessels, ema_translator = EMA(model, cfg.ema_decay), EMA(translator, cfg.ema_decay)
    gan = (0.5, 0.999)
    optimizers = {
        "model": torch.optim.Adam(model.parameters(), lr=cfg.ae_lr, betas=(0.9, 0.999), foreach=cfg.foreach),
        "translator": torch.optim.Adam(translator.parameters(), lr=cfg.lr, betas=gan, foreach=cfg.foreach),
        "code_disc": torch.optim.Adam(code_disc.parameters(), lr=cfg.ae_lr, betas=gan, foreach=cfg.foreach),
        "encoder_reg": torch.optim.Adam(model.encoder.parameters(), lr=cfg.ae_lr, betas=gan, foreach=cfg.foreach),
        "photo_disc": torch.optim.Adam(photo_disc.parameters(), lr=cfg.lr, betas=gan, foreach=cfg.foreach),
    }
    base_lr = {name: opt.param_groups[0]["lr"] for name, opt in optimizers.items()}
    modules = {"model": model, "translator": translator, "ema_vessels": ema_vessels.model, "ema_translator": ema_translator.model,
               "code_disc": code_disc, "photo_disc": photo_disc}
    generators = {"data": torch.Generator().manual_seed(cfg.seed)}
    start_step, elapsed, stats = resume_run(out, cfg.resume, modules, optimizers, generators)
    started, sums = time.time() - elapsed, LossSums(cfg.log_every)
    schedule, done, scored_at = Schedule(cfg.steps, cfg.time_limit_min, started), start_step, None
    desc = "end2end" if cfg.joint else "side by side"
    for step in (bar := tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc=desc, unit="step", disable=not world.main)):
        position = schedule.position(step, device)
        if position >= cfg.steps:
            break
        for name, optimizer in optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(position, cfg.steps, base_lr[name])
        index = distributed.shard(torch.multinomial(weights, cfg.batch_size, replacement=True, generator=generators["data"]))
        batch = (train.inputs[index].to(device, non_blocking=True), train.photos[index].to(device, non_blocking=True))
        inputs, photos = augment_pairs(*to_float(*batch), generators["data"])
        grades, looks = on_device(device, *conditions(cfg.translator_model, train, index))
        with step_context(cfg.bf16, device):
            losses = train_step(cfg, model, translator, code_disc, photo_disc, optimizers,
                                inputs.contiguous(memory_format=memory), photos, grades, looks, train.dr_positive[index].to(device))
        ema_vessels.update(model, step + 1)
        ema_translator.update(translator, step + 1)
        sums.add(losses)  # tensors: no host sync until logging
        done = step + 1
        if done % cfg.log_every == 0:
            row = sums.take()
            bar.set_postfix(recon=f"{row['recon']:.3f}", l1=f"{row['l1']:.3f}")
            stats.write(step=done, seconds=round(time.time() - started, 1), **row)
        if world.main and done % cfg.sample_every == 0 and done < cfg.steps:
            scores, scored_at = snapshot(out, done, ema_vessels.model, ema_translator.model, holdout, stats), done
        if world.main and done % cfg.state_every == 0 and done < cfg.steps:
            save_training_state(out, done, modules, optimizers, generators, extra={"wall_time_s": time.time() - started})
    if not world.main:
        distributed.teardown()
        return out / "checkpoint"
    if done < cfg.steps:
        print(f"time limit reached after {done} steps")
    if scored_at != done:
        scores = snapshot(out, done, ema_vessels.model, ema_translator.model, holdout, stats)
    mode = "end to end (joint)" if cfg.joint else "side by side (the sequential control)"
    info = dict(
        training_data=f"prepared set {cfg.data}: {data_info}",
        trained=f"{mode} with retinagan.training.end2end, {done} steps from "
                f"{cfg.init_vessels or 'scratch'} + {cfg.init_translator or 'scratch'}",
        steps=done,
        wall_time_s=round(time.time() - started, 1),
        device=str(device),
        processes=world.size,
        train_config=asdict(cfg),
    )
    save_model(out / "checkpoint" / "vessels", ema_vessels.model, "aae", **info,
               metrics={"holdout_reconstruction_dice": scores["holdout_dice"]})
    started = translator_config or {}
    if started.get("appearance_bank"):  # the looks the starting translator was trained on (with their FOV shapes if stored)
        bank = {key: started[key] for key in ("appearance_bank", "appearance_fov") if started.get(key)}
    else:
        bank = look_bank(train.appearance.numpy(), train.inputs[:, 1].numpy())
    save_model(out / "checkpoint" / "translator", ema_translator.model, "pix2pix", **bank, **info,
               metrics={"holdout_l1": scores["holdout_l1"]})
    distributed.teardown()
    return out / "checkpoint"


def train_step(cfg, model, translator, code_disc, photo_disc, optimizers, inputs, photos, grades, looks,
               dr_positive=None) -> dict[str, torch.Tensor]:
    vessels = inputs[:, :1]
    # 1. Generator side: autoencoder and translator, one backward pass over the summed losses.
    code_disc.requires_grad_(False)
    logits, mu, log_var = model(vessels)
    recon = reconstruction_loss(logits, vessels, cfg.reconstruction)
    drawn = drawn_maps(logits) if cfg.joint else None
    if drawn is not None and cfg.real_tree_share > 0:  # the first k of the (random) batch keep their real trees
        keep = round(cfg.real_tree_share * len(drawn))
        drawn = torch.cat([vessels[:keep].to(drawn.dtype), drawn[keep:]])
    photo_total, fake, pairs, logs = generator_side(cfg, translator, photo_disc, inputs, photos, grades, looks,
                                                    cfg.photo_adversarial, drawn)
    for name in ("model", "translator"):
        optimizers[name].zero_grad(set_to_none=True)
    (cfg.recon_weight * recon + photo_total).backward()
    distributed.step(optimizers["model"])
    distributed.step(optimizers["translator"])
    out = {"recon": recon.detach(), "fool_photo": logs["fool"], **{k: v for k, v in logs.items() if k != "fool"}}
    # 2. Code discriminator, then the encoder fools it (AAE regularisation); nothing to do for a frozen encoder.
    if any(p.requires_grad for p in model.encoder.parameters()):
        out.update(code_phases(cfg, model, code_disc, optimizers, vessels, mu, log_var))
    # 3. Photo discriminator: real pairs vs drawn pairs.
    d_total, d_logs = discriminator_side(cfg, photo_disc, pairs, photos, fake, grades, dr_positive, cfg.photo_adversarial)
    optimizers["photo_disc"].zero_grad(set_to_none=True)
    d_total.backward()
    distributed.step(optimizers["photo_disc"])
    out.update({"d_photo": d_logs["d"], "d_grade": d_logs["d_grade"]})
    return out


@torch.no_grad()
def snapshot(out: Path, step: int, vessels: VesselAutoencoder, translator: Pix2PixGenerator, holdout, stats) -> dict:
    """Held-out reconstruction Dice and translation L1; a grid of 8 sampled trees over their photos."""
    from retinagan.inference import fov_disc

    scores = {"holdout_dice": reconstruction_dice(vessels, holdout.inputs[:, :1]), "holdout_l1": holdout_l1(translator, holdout)}
    stats.write(step=step, **scores)
    device = next(translator.parameters()).device
    maps = (vessels.sample(list(range(8))) >= 0.5).float()
    fov = torch.from_numpy(fov_disc(maps.shape[-1])).float().to(device).expand_as(maps)
    looks = holdout.appearance.mean(0, keepdim=True).expand(8, -1).to(device) if translator.config.appearance_dim else None
    no_lesions = maps.new_zeros(len(maps), translator.config.lesions, *maps.shape[-2:])
    photos = to_uint8(translator(torch.cat([maps, fov, no_lesions], dim=1), None, looks)).astype(np.float32) / 255
    trees = np.repeat(maps.permute(0, 2, 3, 1).cpu().numpy(), 3, axis=3)
    save_grid(out / "samples" / f"step-{step:06d}.png", np.concatenate([trees, photos]), columns=8)
    return scores
