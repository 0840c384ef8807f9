"""Is BatchNorm why mixing synthetic and real pairs trains a worse segmenter? (figures printed)

python scripts/mixing_batchnorm.py SEED MODE [--pairs synthetic|translated] [--real-share 0.5] [--real-tail 0] [--batch 16] [--steps 1200] [--translator DIR] [--drive-looks] [--added N --added-weight W] [--agreement | --background-doubt P] [--edge-band outer|both] [--soften SIGMA] [--grain STD] [--width 16] [--dann W] [--trees fine|detail] [--photo-detail CHECKPOINT [--photo-detail-steps N]] [--align pcgrad|cosine] [--head domain] [--own-stream] [--real-count K] [--synthetic-count N [--keep-faithful M]] [--eval-at STEP ...]
MODE: shared  every batch holds real and synthetic patches (real-share of them) through one set
              of BatchNorm layers, one loss over the batch (the `mixed` condition of
              `evaluate synthetic`, with the share fixed per batch instead of drawn);
      domain  the same batches, but each domain's patches go through BatchNorm layers of their
              own (domain-specific BatchNorm, Chang et al. 2019), the convolutions shared, one
              loss per domain weighted by its share; the segmenter is saved with the real
              pairs' BatchNorm, so it is an ordinary segmenter.
--real-tail K: the last K of the steps see real patches only (the whole batch), so the mixed
segmenter ends on the real photos. --drive-looks: the other pairs' photos take the looks
(per-channel mean and spread inside the FOV, the translator's appearance input) of DRIVE's 20
training photos instead of the translator's training photos': the target camera's colours
without fine-tuning the translator. --added N: every batch is --batch real patches (as the control's)
plus N other patches through their own BatchNorm, the loss the real patches' plus W times theirs:
the other pairs added to the real training, not replacing part of it. --agreement: the other
pairs' labels count only where the shipped segmenter (trained on DRIVE training) does not
confidently contradict them on their photo (probability and label more than 0.5 apart): pixels
the translator did not paint as labelled, or painted as vessel unlabelled, are left out of the loss.
--background-doubt P: only the second half, more softly: background-labelled pixels where the shipped
segmenter gives P or more are left out (a translator can paint vessels where the tree has none:
on the DRIVE-camera translator's photos of empty trees the segmenter finds 3.3% of the FOV at 0.3,
on the shipped pix2pix-grade's 1.5%).
--edge-band outer: the other pairs' labels do not count on the 1-px ring just outside their
vessels (both: nor on the ring just inside), so where a vessel's edge lies is learnt from the
real pairs' hand-drawn maps alone (mixed segmenters under-call: their edges sit inside DRIVE's).
--soften SIGMA: the other pairs' segmenter inputs are blurred once (Gaussian, SIGMA px) before
training, and --grain STD adds fresh white noise of that spread to each of their patches every
step: the translator's vessels stand out more than DRIVE's (ring-minus-vessel contrast of the
standardised input, median per photo: 1.35 against 1.12) over a smoother surround (fine-detail
spread 0.27 against 0.29); blur 0.7 brings the contrast to 1.10, the grain gives the fine texture back.
--align pcgrad: the other pairs' gradient is projected off the real pairs' where the two point
apart (dot product below 0; PCGrad, Yu et al. 2020), so a step never moves against what the real
patches ask; cosine: it is scaled by the cosine between them, and dropped where that is negative
(Du et al. 2018). Either needs mode domain (a loss per domain) and costs a second backward pass.
--head domain: each domain gets a 1x1 output layer of its own on the shared features (the real
one is kept), so the synthetic labels' drawing conventions need not be the real maps'.
--own-stream: the other pairs' patches are drawn from a random stream of their own, so with
--added the real patches of every step are the control's of the same seed (a paired comparison).
--real-count K: only K of DRIVE's 20 training pairs are the real pairs (evenly spread through the
split: indices round(linspace(0, 19, K))), and the chosen threshold is chosen on those K alone: the
protocol with fewer annotated photos, to see where synthetic pairs start or stop adding to them.
--synthetic-count N: how many synthetic pairs (trees of seeds 0..N-1; default 200, the protocol's):
more pairs, more variety in the synthetic stream for the same number of steps.
--keep-faithful M: of those N pairs, only the M whose photo honours its tree best are used: the
shipped segmenter (trained on DRIVE training) reads each photo (one view), and its Dice at 0.5 inside
the FOV against the tree the photo was painted from ranks the pairs: the pair-level version of
--agreement, whole pairs the translator drew loosely left out instead of pixels. The scores are
kept in OUTPUT/fidelity-HASH.npy (HASH: the photos') for the next seed's run.
--eval-at STEP ...: the EMA segmenter is also scored on DRIVE test after these steps, the same way as
at the end (a copy, saved under OUTPUT/eval-at/): a learning curve within one run, whose weights
stay those of a run without it. The learning rate's cosine still runs to --steps, so the score at
step 4,800 of a 9,600-step run is not that of a 4,800-step run.
--dann W: domain-adversarial training (Ganin et al. 2016): a small critic on the features the
segmenter's head reads tells real patches from the others, and its gradient reaches the segmenter
reversed (weight W, ramped in as 2/(1+exp(-10p))-1 over the run), so the shared convolutions are
pushed towards features that do not tell the cameras apart; the critic is dropped after training.
The other pairs: `synthetic`, those of `evaluate synthetic --fine-vessels` (200 samples of
checkpoints/aae-lsgan-128 with procedural fine vessels, translated by --translator, default checkpoints/pix2pix-grade);
`translated`, those of its `translated` condition (the translator's photos of the 20 DRIVE
training trees, 10 looks each, with their hand-drawn maps: the camera differs, the labels do
not). The real pairs: DRIVE training at 256 px; the recipe is `evaluate synthetic`'s (U-Net, BCE +
Dice, 64-px patches, AdamW 3e-3 cosine, EMA 0.995); the score is Dice at 0.5 and AUC on DRIVE
test, and Dice at the threshold that maximises Dice on DRIVE training (choose_threshold; "threshold",
"dice_chosen"). About 7 min per run at batch 16 on one core of a 2-core CPU.
"""
import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.checkpoint import save_model
from retinagan.inference import FundusTranslator, Segmenter, load_vessel_generator
from retinagan.losses import bce_dice_loss, gaussian_blur
from retinagan.metrics.evaluate_segmenter import score_test
from retinagan.metrics.segmentation import dice
from retinagan.metrics.synthetic_training import (
    evenly_spread,
    real_drive_pairs,
    segmenter_tensors,
    synthetic_pairs,
    translated_pairs,
)
from retinagan.models.pix2pix import looks_of
from retinagan.models.segmenter import SegmenterConfig, VesselSegmenter
from retinagan.training.common import EMA, cosine_lr, seed_everything
from retinagan.training.segmenter import random_patches


class DomainBatchNorm(nn.Module):
    """One BatchNorm per domain; `domain` (a class attribute, set before each forward) picks it."""

    domain = 0

    def __init__(self, norm: nn.BatchNorm2d, domains: int = 2):
        super().__init__()
        self.norms = nn.ModuleList([norm] + [copy.deepcopy(norm) for _ in range(domains - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[DomainBatchNorm.domain](x)


class DomainHead(nn.Module):
    """One output layer per domain; DomainBatchNorm.domain picks it."""

    def __init__(self, head: nn.Conv2d, domains: int = 2):
        super().__init__()
        self.heads = nn.ModuleList([head] + [copy.deepcopy(head) for _ in range(domains - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads[DomainBatchNorm.domain](x)


def aligned(real: list, other: list, how: str) -> list:
    """The other pairs' gradient made to agree with the real pairs' (--align), per parameter tensor
    as one vector over all of them; tensors only one side reaches keep that side's gradient."""
    shared = [(r, o) for r, o in zip(real, other) if r is not None and o is not None]
    dot = sum(float((r * o).sum()) for r, o in shared)
    real_sq = sum(float((r * r).sum()) for r, _ in shared)
    other_sq = sum(float((o * o).sum()) for _, o in shared)
    if how == "pcgrad":
        factor, along = 1.0, (min(dot, 0.0) / real_sq if real_sq > 0 else 0.0)
    else:
        factor, along = max(0.0, dot / (real_sq * other_sq) ** 0.5 if real_sq * other_sq > 0 else 0.0), 0.0
    return [None if o is None else factor * o - (along * r if r is not None else 0) for r, o in zip(real, other)]


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times -scale backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def domain_critic(channels: int) -> nn.Module:
    """Features (B, C, H, W) -> one logit per patch: 1 = the other pairs, 0 = real."""
    return nn.Sequential(nn.Conv2d(channels, 32, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 32, 3, 2, 1), nn.LeakyReLU(0.2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1))


def other_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """bce_dice_loss, or with a second label channel (--agreement) only over the pixels it keeps."""
    if labels.shape[1] == 1:
        return bce_dice_loss(logits, labels)
    target, keep = labels[:, :1], labels[:, 1:]
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * keep).sum() / keep.sum().clamp(min=1)
    prob = torch.sigmoid(logits) * keep
    return bce + 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + (target * keep).sum() + 1)


def fidelity_scores(photos: np.ndarray, fovs: np.ndarray, maps: np.ndarray, judge) -> np.ndarray:
    """How well each photo honours its tree: judge's (a Segmenter's) Dice at 0.5 inside the FOV,
    one view (the shipped segmenter's 8 take 6 s a photo on one core, 1 view 0.8 s)."""
    return np.array([dice(judge.probability(photo, fov, views=1)[fov] >= 0.5, tree[fov]) for photo, fov, tree in zip(photos, fovs, maps)])


def most_faithful(pairs: tuple, scores: np.ndarray, keep: int) -> tuple:
    """The `keep` pairs (photos, fovs, maps) of the highest scores, in their first order."""
    kept = np.sort(np.argsort(-scores, kind="stable")[:keep])
    return tuple(array[kept] for array in pairs)


def real_segmenter(model: nn.Module) -> nn.Module:
    """MODEL (changed in place) as an ordinary segmenter: the real pairs' BatchNorm and output layer."""
    replace_norms(model, lambda norm: norm.norms[0] if isinstance(norm, DomainBatchNorm) else norm)
    if isinstance(model.head, DomainHead):
        model.head = model.head.heads[0]
    return model


def replace_norms(module: nn.Module, make) -> None:
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm2d, DomainBatchNorm)):
            setattr(module, name, make(child))
        else:
            replace_norms(child, make)


class KeptTrees:
    """A vessel model's sampled trees drawn once and kept: sample(seeds) reads them back."""

    def __init__(self, generator, maps: np.ndarray):
        self.model, self.maps = generator.model, maps

    def sample(self, seeds: list[int]) -> np.ndarray:
        return self.maps[seeds].astype(np.float32)


def tree_source(args):
    """The generator of the synthetic pairs' trees (seeds 0..--synthetic-count - 1), as --trees says."""
    if args.trees == "fine":
        return load_vessel_generator("checkpoints/aae-lsgan-128", fine_vessels=True)
    from retinagan.checkpoint import file_sha256

    generator = load_vessel_generator("checkpoints/aae-lsgan-128", detail="checkpoints/detail")
    key = file_sha256("checkpoints/detail/model.safetensors")
    kept = Path(args.output) / "detail-trees.npz"
    if kept.is_file():
        with np.load(kept) as stored:
            if str(stored["key"]) == key:
                return KeptTrees(generator, stored["maps"])
    maps = generator.sample(list(range(200))) > 0.5
    kept.parent.mkdir(parents=True, exist_ok=True)
    np.savez(kept, maps=maps, key=np.array(key))
    return KeptTrees(generator, maps)


def build_parser() -> argparse.ArgumentParser:
    """The command line; its defaults are also what scripts/collect_learning_curve.py takes as the protocol."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("mode", choices=("shared", "domain"))
    parser.add_argument("--pairs", choices=("synthetic", "translated"), default="synthetic", help="what is mixed with the real pairs")
    parser.add_argument("--real-share", type=float, default=0.5, help="real patches per batch, as a share (1: real only, the control)")
    parser.add_argument("--real-tail", type=int, default=0, help="the last K steps see real patches only")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--drive", default="../shared/data/drive")
    parser.add_argument("--output", default="runs/mixing-batchnorm")
    parser.add_argument("--translator", default="checkpoints/pix2pix-grade", help="the pix2pix checkpoint that paints the other pairs")
    parser.add_argument("--drive-looks", action="store_true", help="paint the other pairs in the looks of DRIVE's training photos")
    parser.add_argument("--added", type=int, default=0, help="other patches on top of --batch real ones (mode domain)")
    parser.add_argument("--added-weight", type=float, default=0.25, help="their loss's weight beside the real patches' (--added)")
    parser.add_argument("--agreement", action="store_true", help="leave out other-pair label pixels the shipped segmenter confidently contradicts")
    parser.add_argument("--background-doubt", type=float, help="leave out background-labelled pixels the shipped segmenter gives this or more")
    parser.add_argument("--edge-band", choices=("outer", "both"), help="leave out the other pairs' label pixels on the ring around each vessel's edge")
    parser.add_argument("--soften", type=float, default=0.0, help="blur the other pairs' inputs by this Gaussian sigma (px)")
    parser.add_argument("--grain", type=float, default=0.0, help="white noise of this spread added to each of their patches every step")
    parser.add_argument("--dann", type=float, default=0.0, help="weight of the domain-adversarial critic on the head's features (0: none)")
    parser.add_argument("--align", choices=("pcgrad", "cosine"), help="make the other pairs' gradient agree with the real pairs' (mode domain)")
    parser.add_argument("--head", choices=("shared", "domain"), default="shared", help="one output layer, or one per domain (mode domain)")
    parser.add_argument("--own-stream", action="store_true", help="draw the other pairs' patches from a random stream of their own")
    parser.add_argument("--real-count", type=int, default=20, help="use only this many of DRIVE's 20 training pairs, evenly spread")
    parser.add_argument("--synthetic-count", type=int, default=200, help="how many synthetic pairs (--pairs synthetic, --trees fine)")
    parser.add_argument("--keep-faithful", type=int, metavar="M", help="of the --synthetic-count pairs, use the M whose photo honours its tree best")
    parser.add_argument("--eval-at", type=int, nargs="+", default=[], metavar="STEP",
                        help="also score the EMA segmenter on DRIVE test after these steps (a learning curve within the run; training is unchanged)")
    parser.add_argument("--width", type=int, default=16, help="the segmenter's first-level channels (the protocol's: 16)")
    parser.add_argument("--trees", choices=("fine", "detail"), default="fine",
                        help="the synthetic pairs' trees: with procedural fine vessels, or redrawn by the detailer (checkpoints/detail; "
                             "drawn once and kept in OUTPUT/detail-trees.npz for the detailer's weights)")
    parser.add_argument("--photo-detail", metavar="CHECKPOINT", help="the other pairs' photos get their fine detail redrawn by this photo detailer")
    parser.add_argument("--photo-detail-steps", type=int, help="its sampling steps (default: the checkpoint's)")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.added and (args.mode != "domain" or args.real_share != parser.get_default("real_share")):
        parser.error("--added needs mode domain and takes the place of --real-share")
    if args.agreement and args.background_doubt is not None:
        parser.error("--agreement and --background-doubt are two versions of one mask: give one")
    if (args.agreement or args.edge_band or args.background_doubt is not None) and args.mode != "domain":
        parser.error("--agreement, --background-doubt and --edge-band need mode domain (the other pairs' loss of their own)")
    if (args.align or args.head == "domain") and args.mode != "domain":
        parser.error("--align and --head domain need mode domain (a loss, and BatchNorm, per domain)")
    if args.align and args.dann:
        parser.error("--align and --dann are two ways of steering the shared layers: give one")
    if args.dann < 0 or (args.dann and (args.real_share == 1 or args.added or args.real_tail)):
        parser.error("--dann takes a positive weight, and other pairs in every batch (not --real-share 1, --added or --real-tail)")
    if not 1 <= args.real_count <= 20:
        parser.error(f"--real-count must be within 1 and DRIVE's 20 training pairs, not {args.real_count}")
    if args.synthetic_count < 1 or (args.synthetic_count != parser.get_default("synthetic_count") and (args.pairs != "synthetic" or args.trees != "fine")):
        parser.error("--synthetic-count takes a positive count, and --pairs synthetic with --trees fine (the detailer's trees are kept at 200)")
    if args.keep_faithful is not None and (args.pairs != "synthetic" or not 1 <= args.keep_faithful < args.synthetic_count):
        parser.error(f"--keep-faithful takes --pairs synthetic and a count within 1 and --synthetic-count - 1 ({args.synthetic_count - 1})")
    if not 0 < args.real_share <= 1:
        parser.error(f"--real-share must be within 0 (exclusive) and 1, not {args.real_share}")
    if any(not 0 < step < args.steps for step in args.eval_at):
        parser.error(f"--eval-at takes steps within 1 and --steps - 1 ({args.steps - 1}), not {args.eval_at}")
    if not 0 <= args.real_tail <= args.steps:
        parser.error(f"--real-tail must be within 0 and --steps ({args.steps}), not {args.real_tail}")
    translator = FundusTranslator.load(args.translator, photo_detail=args.photo_detail, photo_detail_steps=args.photo_detail_steps)
    photos, fovs, maps = real_drive_pairs(args.drive, 256)
    kept_real = evenly_spread(len(photos), args.real_count)
    photos, fovs, maps = photos[kept_real], fovs[kept_real], maps[kept_real]
    real_x, real_y = segmenter_tensors(photos, fovs, maps)
    if args.drive_looks:  # look_seed now picks among DRIVE's training photos' looks
        translator.use_looks(looks_of(photos, fovs))
    if args.real_share == 1 and not args.added:
        syn_x = syn_y = None  # the control: nothing to mix in
    else:
        if args.pairs == "translated":
            other = translated_pairs(translator, fovs, maps, looks=10)
        else:
            other = synthetic_pairs(tree_source(args), translator, args.synthetic_count)
            if args.keep_faithful:  # the scores kept beside the runs, under the photos' own hash (same photos, same scores)
                cache = Path(args.output) / f"fidelity-{hashlib.sha256(other[0].tobytes()).hexdigest()[:16]}.npy"
                if cache.is_file():
                    fidelity = np.load(cache)
                else:
                    fidelity = fidelity_scores(*other, Segmenter.load("checkpoints/segmenter"))
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    np.save(cache, fidelity)
                other = most_faithful(other, fidelity, args.keep_faithful)
                kept_scores = np.sort(fidelity)[-args.keep_faithful:]
                print(json.dumps({"fidelity_all": round(float(fidelity.mean()), 4), "fidelity_kept": round(float(kept_scores.mean()), 4),
                                  "fidelity_kept_min": round(float(kept_scores.min()), 4)}), flush=True)
        syn_x, syn_y = segmenter_tensors(*other)
        if args.soften > 0:
            syn_x = gaussian_blur(syn_x, args.soften)
        keep = torch.ones_like(syn_y)  # a second label channel: 1 where the label counts
        if args.edge_band:
            ring = F.max_pool2d(syn_y, 3, 1, 1) - syn_y
            if args.edge_band == "both":
                ring = ring + syn_y + F.max_pool2d(-syn_y, 3, 1, 1)  # + the vessel pixels the erosion removes
            keep = keep * (1 - ring)
        if args.agreement or args.background_doubt is not None:
            judge = Segmenter.load("checkpoints/segmenter")
            prob = np.stack([judge.probability(photo, fov) for photo, fov in zip(other[0], other[1])])
            label = syn_y[:, 0].numpy()
            trusted = np.abs(prob - label) <= 0.5 if args.agreement else (label > 0) | (prob < args.background_doubt)
            keep = keep * torch.from_numpy(trusted).float()[:, None]
        if args.agreement or args.edge_band or args.background_doubt is not None:
            print(json.dumps({"label_pixels_kept": round(float(keep.mean()), 4),
                              "vessel_pixels_kept": round(float((keep * syn_y).sum() / syn_y.sum()), 4)}), flush=True)
            syn_y = torch.cat([syn_y, keep], 1)
    seed_everything(args.seed)
    model = VesselSegmenter(SegmenterConfig(base_channels=args.width, fov_width=256))
    if args.mode == "domain":
        replace_norms(model, DomainBatchNorm)
        if args.head == "domain":
            model.head = DomainHead(model.head)
    ema = EMA(model, 0.995)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4, foreach=True)
    features = []  # what the head reads, per forward (--dann)
    if args.dann:
        critic = domain_critic(args.width)
        critic_optimizer = torch.optim.AdamW(critic.parameters(), lr=1e-3, foreach=True)
        model.head.register_forward_pre_hook(lambda module, inputs: features.append(inputs[0]))
        critic_right = []
    draws = torch.Generator().manual_seed(args.seed)
    other_draws = torch.Generator().manual_seed(args.seed + 2000) if args.own_stream else draws
    grain = torch.Generator().manual_seed(args.seed + 1000)  # its own stream: the patches drawn stay those without it
    n_real = args.batch if args.added else round(args.batch * args.real_share)
    n_other, other_weight = (args.added, args.added_weight) if args.added else (args.batch - n_real, 1 - args.real_share)
    real_weight = 1.0 if args.added else args.real_share

    def other_patches() -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = random_patches(syn_x, syn_y, n_other, 64, other_draws)
        return (xs + torch.randn(xs.shape, generator=grain) * args.grain if args.grain > 0 else xs), ys

    painter = "" if args.translator == parser.get_default("translator") else f"-{Path(args.translator).resolve().parent.name if Path(args.translator).name == 'checkpoint' else Path(args.translator).name}"
    suffix = ("-drivelooks" if args.drive_looks else "") + (f"-tail{args.real_tail}" if args.real_tail else "") + (f"-steps{args.steps}" if args.steps != parser.get_default("steps") else "") \
        + (f"-added{args.added}w{args.added_weight}" if args.added else "") + ("-agreement" if args.agreement else "") + (f"-doubt{args.background_doubt}" if args.background_doubt is not None else "") \
        + (f"-edge{args.edge_band}" if args.edge_band else "") + (f"-soften{args.soften}" if args.soften else "") + (f"-grain{args.grain}" if args.grain else "") + (f"-width{args.width}" if args.width != parser.get_default("width") else "") + (f"-dann{args.dann}" if args.dann else "") + ("-detail" if args.trees == "detail" else "") + ("-photodetail" if args.photo_detail else "") \
        + (f"-align{args.align}" if args.align else "") + ("-head" if args.head == "domain" else "") + ("-own" if args.own_stream else "") + (f"-real{args.real_count}" if args.real_count != 20 else "") + (f"-syn{args.synthetic_count}" if args.synthetic_count != parser.get_default("synthetic_count") else "") \
        + (f"-faithful{args.keep_faithful}" if args.keep_faithful else "")
    def saved_and_scored(folder: Path, segmenter: nn.Module, training_data: str) -> dict:
        """SEGMENTER saved to FOLDER and scored on DRIVE test, at the threshold chosen on the DRIVE
        training pairs it saw (all 20, or --real-count's), never on test: mid-run (--eval-at) as at the end."""
        save_model(folder, segmenter, "segmenter", training_data=training_data)
        return score_test(Segmenter.load(folder), args.drive, chosen_threshold=True, training_images=kept_real.tolist())

    run_name = f"{args.pairs}{painter}-{args.mode}-share{args.real_share}{suffix}-batch{args.batch}-seed{args.seed}"
    start = time.time()
    model.train()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, args.steps, 3e-3)
        tail = step >= args.steps - args.real_tail
        xr, yr = random_patches(real_x, real_y, args.batch if tail else n_real, 64, draws)
        if n_other == 0 or tail:  # --real-share 1: the real-only control, the same code path
            DomainBatchNorm.domain = 0  # the real pairs' BatchNorm (mode domain)
            loss = bce_dice_loss(model(xr), yr)
        elif args.mode == "domain":
            xs, ys = other_patches()
            DomainBatchNorm.domain = 0
            loss = real_weight * bce_dice_loss(model(xr), yr)
            DomainBatchNorm.domain = 1
            other_part = other_weight * other_loss(model(xs), ys)
            if args.align:  # the two gradients apart, combined below in place of loss.backward()
                params = list(model.parameters())
                real_grads = torch.autograd.grad(loss, params, allow_unused=True)
                other_grads = aligned(real_grads, torch.autograd.grad(other_part, params, allow_unused=True), args.align)
                loss = None
            else:
                loss = loss + other_part
        else:
            xs, ys = other_patches()
            loss = bce_dice_loss(model(torch.cat([xr, xs])), torch.cat([yr, ys]))
        if args.dann:  # every forward above left the head's input in features
            ramp = 2 / (1 + np.exp(-10 * step / args.steps)) - 1
            logits = critic(GradientReversal.apply(torch.cat(features), args.dann * ramp))[:, 0]
            domain = torch.cat([torch.zeros(len(xr)), torch.ones(len(logits) - len(xr))])
            loss = loss + F.binary_cross_entropy_with_logits(logits, domain)  # the critic minimises it, the segmenter (reversed) maximises
            right = ((logits > 0).float() == domain).float()
            critic_right.append(float((right[domain == 0].mean() + right[domain == 1].mean()) / 2))  # balanced: 0.5 is chance
        features.clear()
        optimizer.zero_grad(set_to_none=True)
        if args.dann:
            critic_optimizer.zero_grad(set_to_none=True)
        if loss is None:  # --align
            for p, r, o in zip(params, real_grads, other_grads):
                p.grad = r if o is None else (o if r is None else r + o)
        else:
            loss.backward()
        optimizer.step()
        if args.dann:
            critic_optimizer.step()
        ema.update(model, step + 1)
        if step + 1 in args.eval_at:  # a copy is scored; the run goes on untouched: loading it draws initial
            seconds, rng = time.time(), torch.get_rng_state()  # weights from the global stream the dropout uses, so it is put back
            at = Path(args.output) / "eval-at" / f"{run_name}-step{step + 1}"  # one folder per run: runs side by side do not share it
            score = saved_and_scored(at, real_segmenter(copy.deepcopy(ema.model)), "an intermediate copy (--eval-at)")
            print(json.dumps({"eval_at": step + 1, "dice": round(score["dice"], 4), "auc": round(score["auc"], 4),
                              "dice_chosen": round(score["dice_chosen"], 4), "minutes": round((time.time() - seconds) / 60, 1)}), flush=True)
            torch.set_rng_state(rng)
    final = real_segmenter(ema.model)
    folder = Path(args.output) / run_name
    extra = f" + {len(syn_x)} {args.pairs} pairs, {args.mode} BatchNorm" if syn_x is not None else ""
    score = saved_and_scored(folder, final, f"DRIVE training{f' ({args.real_count} of 20 pairs)' if args.real_count < 20 else ''}{extra}")
    print(json.dumps({"pairs": args.pairs, "translator": args.translator, "mode": args.mode, "seed": args.seed, "real_share": args.real_share, "real_tail": args.real_tail, "drive_looks": args.drive_looks, "added": args.added, "added_weight": args.added_weight if args.added else None, "agreement": args.agreement, "background_doubt": args.background_doubt, "edge_band": args.edge_band, "soften": args.soften, "grain": args.grain, "width": args.width, "dann": args.dann, "trees": args.trees, "photo_detail": args.photo_detail, "photo_detail_steps": args.photo_detail_steps, "align": args.align, "head": args.head, "own_stream": args.own_stream, "real_count": args.real_count, "synthetic_count": args.synthetic_count, "keep_faithful": args.keep_faithful,
                      "critic_balanced_accuracy_last_100": round(float(np.mean(critic_right[-100:])), 3) if args.dann else None, "batch": args.batch, "steps": args.steps,
                      "dice": round(score["dice"], 4), "auc": round(score["auc"], 4), "threshold": round(score["threshold_chosen"], 3),
                      "dice_chosen": round(score["dice_chosen"], 4),
                      "minutes": round((time.time() - start) / 60, 1)}))


if __name__ == "__main__":
    main()
