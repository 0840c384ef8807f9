"""Procedural fine vessels for generated trees: what the autoencoders leave out.

The vessel models draw the arcades and main branches, thick and in one piece, but not the thin
vessels that make up a third of a real tree's centre-line (docs/stage1.md). This step adds
them by rule, not by learning, so its output is labelled as such everywhere it appears:

1. join the tree's pieces to the main one across their shortest gap (a retinal tree is one
   piece, rooted at the disc) and drop pieces farther off;
2. redraw every vessel at `thin` x its radius (the decoders draw vessels about twice as
   wide as hand-drawn maps have them) at 4x the map's resolution;
3. grow thin branches from points along the tree by space colonisation (Runions et al.,
   2005): attraction points scattered over the field of view, away from existing vessels and
   the fovea, pull the nearest branch tip a step towards them; branches start along their
   parent vessel, pointing away from the disc, and keep their heading (momentum);
4. widen each branch by the number of branch points it feeds (pipe model, width ~ count^(1/gamma));
5. bring the drawing back to the map's size as the preparation step does with hand-drawn
   maps (area average, threshold at half), so the thinnest vessels break into pieces as
   they do in the real 256-px maps.

Deterministic: the same tree and seed give the same map. The defaults were chosen on DRIVE's
training maps (morphology distance of `aae-lsgan-128` samples), then scored once on DRIVE test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from retinagan.data.preprocess import fov_disc, resize

RENDER_SCALE = 4  # drawing resolution, times the map's side
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class FineVesselConfig:
    thin: float = 0.5  # the tree's vessels are redrawn at this share of their radius
    min_radius: float = 0.5  # ... but no thinner than this (map pixels), so the tree stays whole
    max_gap: float = 40.0  # pieces of the tree farther than this (map pixels) from the main one are dropped
    attractors: int = 500  # attraction points scattered over the field of view
    avoid: float = 6.0  # no attraction point this close (map pixels) to a vessel of the tree
    fovea_radius: float = 14.0  # ... nor to the fovea, which is free of vessels
    start_every: int = 8  # branches may start at every k-th centre-line point of the tree
    influence: float = 20.0  # an attraction point pulls tips within this distance
    kill: float = 3.0  # ... and is used up once a branch comes this close
    step: float = 3.0  # branch segment length (map pixels)
    momentum: float = 1.0  # weight of a branch's previous heading against the pull
    wiggle: float = 0.15  # random turn per step (std of a unit-vector jitter)
    iterations: int = 80  # growth rounds at most
    tip_width: float = 0.5  # branch width at its tips (map pixels): thinner than a pixel, so tips break up
    max_width: float = 2.0  # branch width cap
    gamma: float = 3.0  # pipe-model exponent: width ~ (branch points fed)^(1/gamma)


def estimate_disc_and_fovea(tree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) of the optic disc (where the tree is densest) and of the fovea, which lies about
    0.39 map widths towards the other side and a little below (DRIVE's hand-drawn maps,
    laterality-normalised: disc at x 227, fovea at x 128 of 256)."""
    side = tree.shape[0]
    density = ndimage.gaussian_filter(tree.astype(np.float32), side / 40)
    disc = np.array(np.unravel_index(int(np.argmax(density)), density.shape), dtype=np.float64)
    toward_centre = 1.0 if disc[1] < side / 2 else -1.0  # disc on the left (not normalised) or right
    fovea = disc + np.array([0.05, 0.39 * toward_centre]) * side
    fovea[1] = np.clip(fovea[1], 0.35 * side, 0.65 * side)
    return disc, fovea


def join_pieces(tree: np.ndarray, max_gap: float) -> np.ndarray:
    """Each piece of the tree joined to the main one across its shortest gap (2-px line); pieces
    farther than max_gap are dropped."""
    labels, count = ndimage.label(tree, structure=_EIGHT)
    if count <= 1:
        return tree.copy()
    sizes = np.bincount(labels.ravel())[1:]
    canvas = Image.fromarray(tree.astype(np.uint8) * 255)
    draw = ImageDraw.Draw(canvas)
    kept = labels == int(np.argmax(sizes)) + 1
    for label in np.argsort(-sizes)[1:] + 1:  # largest pieces first
        piece = np.argwhere(labels == label)
        joined = np.argwhere(kept)
        gaps, nearest = cKDTree(joined).query(piece)
        k = int(np.argmin(gaps))
        if gaps[k] > max_gap:
            continue
        (ay, ax), (by, bx) = piece[k], joined[nearest[k]]
        draw.line([(ax, ay), (bx, by)], fill=255, width=2)
        kept |= labels == label
    joined_map = np.asarray(canvas) > 0
    return joined_map & (kept | ~tree)  # the gap lines stay; dropped pieces go


def redraw_thinner(tree: np.ndarray, config: FineVesselConfig) -> tuple[Image.Image, np.ndarray]:
    """The tree drawn at RENDER_SCALE x its size with radii scaled by config.thin; also its
    centre-line points (K, 2) as (y, x) in map pixels."""
    side = tree.shape[0]
    centre_line = np.argwhere(skeletonize(tree))
    radius = ndimage.distance_transform_edt(tree)
    canvas = Image.new("L", (side * RENDER_SCALE, side * RENDER_SCALE), 0)
    draw = ImageDraw.Draw(canvas)
    for y, x in centre_line:
        r = max(radius[y, x] * config.thin, config.min_radius) * RENDER_SCALE
        cx, cy = (x + 0.5) * RENDER_SCALE, (y + 0.5) * RENDER_SCALE
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    return canvas, centre_line.astype(np.float64) + 0.5


def branch_starts(centre_line: np.ndarray, disc: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Every k-th centre-line point, with the local direction of its vessel (unit, pointing away
    from the disc): new branches leave along their parent, at an acute angle."""
    starts = centre_line[::every]
    _, neighbours = cKDTree(centre_line).query(starts, k=min(7, len(centre_line)))
    headings = []
    for point, ids in zip(starts, neighbours.reshape(len(starts), -1)):  # (K, k) even when k == 1
        local = centre_line[ids]
        heading = np.linalg.svd(local - local.mean(0), full_matrices=False)[2][0] if len(local) > 1 else np.array([1.0, 0.0])
        headings.append(heading if np.dot(heading, point - disc) >= 0 else -heading)
    return starts, np.array(headings).reshape(-1, 2)


def colonise(rng: np.random.Generator, starts: np.ndarray, headings: np.ndarray, fov: np.ndarray, fovea: np.ndarray,
             config: FineVesselConfig) -> tuple[np.ndarray, np.ndarray]:
    """Space colonisation from the start points -> (nodes (N, 2) (y, x), parent index per node;
    -1 for the starts, which come first)."""
    side = fov.shape[0]
    points = rng.uniform(0, side, size=(config.attractors * 3, 2))
    points = points[fov[points[:, 0].astype(int), points[:, 1].astype(int)]]
    points = points[np.linalg.norm(points - fovea, axis=1) > config.fovea_radius]
    points = points[cKDTree(starts).query(points)[0] > config.avoid][: config.attractors]
    nodes, parents, heads = [*starts], [-1] * len(starts), [*headings]
    alive = np.ones(len(points), dtype=bool)
    for _ in range(config.iterations):
        if not alive.any():
            break
        distance, nearest = cKDTree(np.array(nodes)).query(points[alive], distance_upper_bound=config.influence)
        pulled = np.isfinite(distance)
        if not pulled.any():
            break
        targets, owners = points[alive][pulled], nearest[pulled]
        first_new = len(nodes)
        for node in np.unique(owners):
            pulls = targets[owners == node] - nodes[node]
            pull = (pulls / np.maximum(np.linalg.norm(pulls, axis=1, keepdims=True), 1e-6)).sum(0)
            heading = pull / max(np.linalg.norm(pull), 1e-6) + config.momentum * heads[node] + rng.normal(0, config.wiggle, 2)
            heading /= max(np.linalg.norm(heading), 1e-6)
            nodes.append(nodes[node] + config.step * heading)
            parents.append(int(node))
            heads.append(heading)
        reached = np.isfinite(cKDTree(np.array(nodes[first_new:])).query(points, distance_upper_bound=config.kill)[0])
        alive &= ~reached
    return np.array(nodes).reshape(-1, 2), np.array(parents, dtype=np.int64)


def branch_widths(parents: np.ndarray, n_starts: int, config: FineVesselConfig) -> np.ndarray:
    """Width per node (map pixels): tip_width x (nodes it feeds, itself included)^(1/gamma), capped."""
    fed = np.ones(len(parents))
    for node in range(len(parents) - 1, n_starts - 1, -1):  # children come after their parents
        if parents[node] >= n_starts:
            fed[parents[node]] += fed[node]
    return np.minimum(config.tip_width * fed ** (1.0 / config.gamma), config.max_width)


def add_fine_vessels(tree: np.ndarray, seed: int, fov: np.ndarray | None = None,
                     config: FineVesselConfig = FineVesselConfig()) -> np.ndarray:
    """A binary (S, S) vessel map -> the same tree, thinned, with fine vessels grown from it
    (bool (S, S), inside fov; fov None: the disc as wide as the map). Same tree and seed, same map."""
    tree = np.asarray(tree, dtype=bool)
    side = tree.shape[0]
    if tree.ndim != 2 or tree.shape[1] != side:
        raise ValueError(f"add_fine_vessels takes one square map, not shape {tree.shape}")
    if fov is None:
        fov = fov_disc(side)
    if not tree.any():
        return tree.copy()
    rng = np.random.default_rng(int(seed))
    tree = join_pieces(tree, config.max_gap)
    disc, fovea = estimate_disc_and_fovea(tree)
    canvas, centre_line = redraw_thinner(tree, config)
    starts, headings = branch_starts(centre_line, disc, config.start_every)
    nodes, parents = colonise(rng, starts, headings, fov, fovea, config)
    widths = branch_widths(parents, len(starts), config)
    draw = ImageDraw.Draw(canvas)
    for node in range(len(starts), len(nodes)):
        (y0, x0), (y1, x1) = nodes[parents[node]] * RENDER_SCALE, nodes[node] * RENDER_SCALE
        half = widths[node] * RENDER_SCALE / 2
        draw.line([(x0, y0), (x1, y1)], fill=255, width=max(int(round(2 * half)), 1))
        draw.ellipse([x1 - half, y1 - half, x1 + half, y1 + half], fill=255)
    return resize(np.asarray(canvas) > 0, side, binary=True) & fov  # as the hand-drawn maps were prepared
