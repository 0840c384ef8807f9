"""Pieces shared by the training loops: seeding, devices, schedules, EMA, stats log."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retinagan import distributed
from retinagan.checkpoint import load_model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EMA:
    """Exponential moving average of a model's parameters; buffers (BatchNorm stats) copied."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """step: optimiser steps done so far (kept by the loop, so a resumed run matches)."""
        # Warm-up: early on average over the steps so far, so the random initial weights
        # do not linger (at 0.998, 37% of them would still be there after 500 steps).
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


def cosine_lr(step: int, total: int, base: float, warmup: int = 100, floor: float = 0.02) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from base down to floor x base at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def pick_device(name: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU; 'cpu', 'cuda', 'cuda:1' as named."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: this PyTorch sees no CUDA GPU")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def bf16_units() -> bool:
    """Whether this machine computes bf16 in hardware where training runs by default ('auto'
    device): a CUDA GPU with bf16, else a CPU with AMX or AVX512-BF16. There bf16 autocast pays
    (bench/bench_train.py: 2x on a Xeon with AMX); on CPUs without them oneDNN emulates bf16,
    10-20x slower, so the training default follows this."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    try:
        return any(probe() for probe in probes if probe is not None)
    except RuntimeError:
        return False


def step_context(bf16: bool, device: torch.device):
    """bf16 autocast around a training step (matrix work in bf16, losses and weights in fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def layout(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


class Schedule:
    """Where a run stands, in steps or against the clock, whichever is further along.

    With time_limit_min > 0 a run ends at `steps` or when the time is up; the learning-rate
    schedule follows the larger fraction, so a run cut by the clock still ends decayed.
    (A clock-bound run is not step-for-step reproducible; a step-bound one is.)
    """

    def __init__(self, steps: int, time_limit_min: float, started: float):
        self.steps, self.limit_s, self.started = steps, time_limit_min * 60, started

    def position(self, step: int, device: torch.device | None = None) -> int:
        """Steps done, or the clock's share of them; in a data-parallel run, the furthest
        process's view, so that all change learning rate and stop together."""
        if self.limit_s <= 0:
            return step
        by_clock = int(self.steps * (time.time() - self.started) / self.limit_s)
        return max(step, int(distributed.agree_max(by_clock, device or torch.device("cpu"))))


class StatsLog:
    """Appends one JSON object per line to stats.jsonl."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def truncate(self, step: int) -> None:
        """Drop rows past step: after resuming from a state, those steps are run again."""
        if self.path.is_file() and distributed.WORLD.main:
            rows = [line for line in self.path.read_text().splitlines() if json.loads(line).get("step", 0) <= step]
            self.path.write_text("".join(row + "\n" for row in rows))

    def write(self, **values) -> None:
        if not distributed.WORLD.main:  # data-parallel runs: rank 0 keeps the log
            return
        with self.path.open("a") as f:
            f.write(json.dumps(values) + "\n")


class LossSums:
    """A step's losses summed as tensors (no host sync per step); `take` averages them over the
    steps since the last take and over the data-parallel ranks: the row stats.jsonl gets."""

    def __init__(self, every: int):
        self.every, self.sums = every, {}

    def add(self, losses: dict) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def take(self) -> dict[str, float]:
        row = {k: float(distributed.global_mean(v)) / self.every for k, v in self.sums.items()}
        self.sums = {}
        return row


def resume_run(out: Path, resume: bool, modules: dict, optimizers: dict, generators: dict) -> tuple[int, float, StatsLog]:
    """Restore the latest training state in `out` (when resume), in place.

    Returns (first step to run, wall time already spent, the stats log with rows past that
    step dropped, so a resumed run's log matches an uninterrupted one)."""
    from retinagan.checkpoint import latest_training_state, load_training_state

    start_step, elapsed = 0, 0.0
    state = latest_training_state(out) if resume else None
    if state is not None:
        meta = load_training_state(state, modules, optimizers, generators)
        start_step, elapsed = meta["step"], meta["extra"].get("wall_time_s", 0.0)
        print(f"resumed from {state} (step {start_step})")
    stats = StatsLog(out / "stats.jsonl")
    stats.truncate(start_step)
    return start_step, elapsed, stats


def start_model(folder: str, kind, default_config, cls, device: torch.device):
    """A model from a checkpoint (its config wins), or a fresh one from the given config."""
    if not folder:
        return cls(default_config).to(device), None
    model, config = load_model(folder, expected_kind=kind, device=str(device))
    return model.train(), config


def freeze(models: dict[str, torch.nn.Module], spec: str) -> int:
    """Keep the parameters named by spec as they are: "vessels:encoder,translator:down" stops
    every parameter of the autoencoder whose name starts with "encoder" and every translator
    parameter under "down". A run that freezes the layers it does not need to change writes
    checkpoints that differ from their starts only in the rest (what `export --base` stores).
    BatchNorm statistics of frozen layers still follow the batches. Returns how many parameters
    were frozen; a prefix that names no parameter is an error (a typo would freeze nothing)."""
    frozen = 0
    for item in filter(None, (part.strip() for part in spec.split(","))):
        which, _, prefix = item.partition(":")
        if which not in models or not prefix:
            raise ValueError(f"--freeze {item!r}: expected {' or '.join(f'{name}:PREFIX' for name in models)}")
        named = [p for name, p in models[which].named_parameters() if name == prefix or name.startswith(prefix.rstrip(".") + ".")]
        if not named:
            raise ValueError(f"--freeze {item!r}: the {which} model has no parameter under {prefix!r}")
        for parameter in named:
            frozen += parameter.numel() if parameter.requires_grad else 0
            parameter.requires_grad_(False)
    return frozen


def drawn_maps(logits: torch.Tensor) -> torch.Tensor:
    """Decoder logits -> binary maps (what the translator and the users get at inference), with
    the gradient of the soft probabilities (straight-through)."""
    soft = torch.sigmoid(logits)
    return soft + ((soft >= 0.5).to(soft.dtype) - soft).detach()


def judge(disc, real: tuple, fake: tuple, **kwargs) -> tuple:
    """A discriminator on real and generated inputs as one batch -> (its output on the real half,
    its output on the fake half); a tuple output (logits, class logits) is split item by item.

    real, fake: the discriminator's positional inputs for each side (None passes through, as
    for "no grades"). One batch, so BatchNorm layers normalise both sides with the same
    statistics. Fed one batch each (as until 2026-11-26), each side was normalised by its own
    statistics, which erased every difference a whole batch shares (contrast, sharpness,
    colour): the translator's discriminator stayed at chance (loss 0.693) through whole runs.
    """
    def both(a, b):
        if a is None:
            return None
        return torch.cat([a.float(), b.float()]) if a.is_floating_point() else torch.cat([a, b])

    out = disc(*[both(a, b) for a, b in zip(real, fake)], **kwargs)
    halves = lambda t: (None, None) if t is None else t.chunk(2)  # noqa: E731
    if isinstance(out, tuple):
        real_out, fake_out = zip(*[halves(t) for t in out])
        return real_out, fake_out
    return halves(out)


DISC_AUGMENTS = ("color", "translation", "cutout")


def parse_disc_augment(policy: str) -> tuple[str, ...]:
    """"color,translation,cutout" (any subset; "" for none) -> the checked tuple of names."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in DISC_AUGMENTS]
    if unknown:
        raise ValueError(f"unknown discriminator augmentation {', '.join(unknown)}: choose from {', '.join(DISC_AUGMENTS)}")
    return names


def diff_augment(condition: torch.Tensor, photo: torch.Tensor, policy: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable augmentation of the pairs a discriminator judges (DiffAugment, Zhao et al.
    2020), drawn per pair from the global torch RNG (saved with a training state, so a resumed
    run draws the same): on 156 training photos a discriminator learns the photos themselves
    within a few thousand steps, and transformed pairs are meant to keep it from that. Measured
    here (docs/stage2.md): with all three transforms the translator's discriminators stayed at
    chance for a whole run; with translation alone they learned without memorising. Both sides
    of the game see augmented pairs (real and generated alike, each its own draw), and the
    generator's gradient passes through the augmentation.

    condition: (B, C, S, S) maps in 0..1; photo: (B, 3, S, S) in -1..1.
    color: brightness +-0.5, saturation x0-2, contrast x0.5-1.5 (photo only);
    translation: the pair shifted by up to S/8 px each way, filled with 0 maps and a black photo;
    cutout: a square of side S/2 at a random place set to 0 in both.
    """
    b, size, device = photo.shape[0], photo.shape[-1], photo.device
    draw = lambda: torch.rand(b, 1, 1, 1).to(device)  # noqa: E731
    if "color" in policy:
        photo = photo + (draw() - 0.5)
        mean = photo.mean(dim=1, keepdim=True)
        photo = (photo - mean) * (draw() * 2) + mean
        mean = photo.mean(dim=(1, 2, 3), keepdim=True)
        photo = (photo - mean) * (draw() + 0.5) + mean
    if "translation" in policy:
        shift = size // 8
        dy, dx = torch.randint(-shift, shift + 1, (2, b)).tolist()
        pad = lambda t, fill: F.pad(t, (shift, shift, shift, shift), value=fill)  # noqa: E731
        cond, pic = pad(condition, 0.0), pad(photo, -1.0)
        rows = [slice(shift - y, shift - y + size) for y in dy]
        cols = [slice(shift - x, shift - x + size) for x in dx]
        condition = torch.stack([cond[i, :, rows[i], cols[i]] for i in range(b)])
        photo = torch.stack([pic[i, :, rows[i], cols[i]] for i in range(b)])
    if "cutout" in policy:
        side = size // 2
        corner = torch.randint(0, size - side + 1, (2, b)).tolist()
        keep = torch.ones(b, 1, size, size)
        for i, (y, x) in enumerate(zip(*corner)):
            keep[i, :, y : y + side, x : x + side] = 0
        keep = keep.to(device)
        condition, photo = condition * keep, photo * keep
    return condition, photo
