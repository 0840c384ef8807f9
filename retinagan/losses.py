"""Loss functions: pure functions of tensors."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from retinagan.distributed import global_sum


def _dice_loss_of_probabilities(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    # Pooled over the batch, and over the processes of a data-parallel run (global_sum).
    intersection = global_sum((prob * target).sum())
    return 1 - (2 * intersection + eps) / (global_sum(prob.sum() + target.sum()) + eps)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch (pooled, so empty patches do not blow up)."""
    return _dice_loss_of_probabilities(torch.sigmoid(logits), target, eps)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target) + soft_dice_loss(logits, target)


def bce_dice_per_map(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """(B,) BCE + (1 - soft Dice) of each map on its own: no map's loss depends on the others'."""
    logits, dims = logits.float(), tuple(range(1, logits.dim()))
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dims)
    dice = (2 * (prob * target).sum(dims) + eps) / (prob.sum(dims) + target.sum(dims) + eps)
    return bce + 1 - dice


def kl_divergence(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)), summed over latent dims, averaged over the batch."""
    mu, log_var = mu.float(), log_var.float()
    return (-0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=1)).mean()


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "bce_dice") -> torch.Tensor:
    """Vessel maps are ~10% foreground: plain pixel losses settle on a blurry average that
    thresholding erases, so the default adds soft Dice, which weighs the vessels themselves.
    Computed in fp32 whatever the logits' dtype (bf16 sums over a batch lose the Dice)."""
    logits = logits.float()
    if kind == "bce_dice":
        return bce_dice_loss(logits, target)
    if kind == "multiscale":
        return multiscale_dice_loss(logits, target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "l1":
        return (torch.sigmoid(logits) - target).abs().mean()
    raise ValueError(f"unknown reconstruction loss {kind!r} (bce_dice, multiscale, bce, l1)")


def multiscale_dice_loss(logits: torch.Tensor, target: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """BCE + soft Dice at full size and at 1/2, 1/4, 1/8 size (average pooled).

    The coarse terms reward the layout of the tree (arcades, disc) long before the decoder
    can place thin vessels to the pixel, which is what a 128-number code has to learn first.
    """
    prob = torch.sigmoid(logits)
    loss = F.binary_cross_entropy_with_logits(logits, target)
    for level in range(scales):
        if level:
            prob, target = F.avg_pool2d(prob, 2), F.avg_pool2d(target, 2)
        loss = loss + _dice_loss_of_probabilities(prob, target) / scales
    return loss


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Loss the discriminator minimises: real -> 1, fake -> 0 (vanilla GAN 'bce' or least squares 'lsgan')."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "bce":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())
    raise ValueError(f"unknown adversarial loss {kind!r} (bce, lsgan)")


def generator_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Loss the generator minimises: make the discriminator call its output real."""
    fake_logits = fake_logits.float()
    if kind == "bce":
        return F.softplus(-fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * (fake_logits - 1).pow(2).mean()
    raise ValueError(f"unknown adversarial loss {kind!r} (bce, lsgan)")


def grade_loss(logits: torch.Tensor, grade: torch.Tensor, dr_positive: torch.Tensor | None = None) -> torch.Tensor:
    """Auxiliary-classifier loss on (B, G) grade logits: cross-entropy where the grade is known
    (>= 0); where it is unknown but the photo is known to show DR (dr_positive), -log P(grade >= 1);
    other rows add nothing. Averaged over the rows that count (0 when none do)."""
    logits = logits.float()
    known = grade >= 0
    terms = F.cross_entropy(logits, grade.clamp(min=0), reduction="none") * known
    count = known.float()
    if dr_positive is not None:
        positive = dr_positive & ~known
        log_p = F.log_softmax(logits, dim=1)
        terms = terms - torch.logsumexp(log_p[:, 1:], dim=1) * positive
        count = count + positive.float()
    return terms.sum() / count.sum().clamp(min=1)


def masked_l1(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the pixels (and channels) where mask (B, 1, H, W) is on; pooled
    over the batch and the processes of a data-parallel run, so every pixel weighs the same."""
    weights = mask.float()
    total = global_sum(((fake.float() - real.float()).abs() * weights).sum())
    count = global_sum(weights.sum() * fake.shape[1])
    return total / count.clamp(min=1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred by a separable Gaussian (radius 3 sigma, reflected edges), in float32
    whatever the autocast: under CPU bf16 autocast, depthwise convolutions of 19 taps or more
    (sigma >= 3) ran for over a minute a call here, so `--l1-lowpass 3` never finished a step."""
    with torch.autocast(x.device.type, enabled=False):
        return _separable_gaussian(x.float(), sigma)


def _separable_gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(x.shape[1], 1, 1, -1), groups=x.shape[1])
    return F.conv2d(x, kernel.view(x.shape[1], 1, -1, 1), groups=x.shape[1])


def lowpass_reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, sigma: float) -> torch.Tensor:
    """BCE + soft Dice between the decoded and the real map, both blurred (Gaussian sigma px):
    where the tree runs must agree, while the 1-px placement of thin vessels (which a pixel loss
    can only average away) is left to a map discriminator."""
    prob = gaussian_blur(torch.sigmoid(logits.float()), sigma)
    target = gaussian_blur(target.float(), sigma)
    bce = F.binary_cross_entropy(prob.clamp(1e-5, 1 - 1e-5), target)
    return bce + _dice_loss_of_probabilities(prob, target)


def soft_skeleton(x: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """Soft morphological skeleton of (B, 1, H, W) maps in [0, 1] (Shit et al., CVPR 2021): what
    each erosion takes off but an opening does not give back, gathered over `iterations`
    erosions (half the widest vessel's width, in px; 5 covers the 8-px arcades of a 256-px map)."""
    def erode(t):  # minimum over a plus-shaped 3x3 neighbourhood
        return torch.minimum(-F.max_pool2d(-t, (3, 1), 1, (1, 0)), -F.max_pool2d(-t, (1, 3), 1, (0, 1)))

    def opening(t):
        return F.max_pool2d(erode(t), 3, 1, 1)

    skeleton = F.relu(x - opening(x))
    for _ in range(iterations):
        x = erode(x)
        delta = F.relu(x - opening(x))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


def cldice_loss(pred: torch.Tensor, target: torch.Tensor, iterations: int = 5, eps: float = 1.0) -> torch.Tensor:
    """1 - soft clDice (Shit et al., CVPR 2021) of decoded maps `pred` in [0, 1] (soft
    probabilities, or straight-through thresholded ones: training.common.drawn_maps), pooled over
    the batch: the harmonic mean of the share of the decoded map's centre lines that lie on real
    vessels and the share of the real centre lines the decoded map covers. Each vessel counts by its
    length, not its area, so the thin vessels that soft Dice hardly weighs (a 1-px vessel: a tenth of
    an arcade's pixels per length) count as much as the wide ones; on thresholded maps, grey
    plateaus, which cover the real centre lines softly, count for nothing. In fp32, as the other
    reconstruction losses."""
    pred, target = pred.float(), target.float()
    skeleton_pred, skeleton_target = soft_skeleton(pred, iterations), soft_skeleton(target, iterations)
    precision = (global_sum((skeleton_pred * target).sum()) + eps) / (global_sum(skeleton_pred.sum()) + eps)
    sensitivity = (global_sum((skeleton_target * pred).sum()) + eps) / (global_sum(skeleton_target.sum()) + eps)
    return 1 - 2 * precision * sensitivity / (precision + sensitivity)


def lowpass_l1(fake: torch.Tensor, real: torch.Tensor, sigma: float) -> torch.Tensor:
    """L1 between the two photos blurred (Gaussian sigma px): their layout and colour must
    agree, their grain (which no vessel map determines) is left to the discriminator."""
    return F.l1_loss(gaussian_blur(fake, sigma), gaussian_blur(real, sigma))
