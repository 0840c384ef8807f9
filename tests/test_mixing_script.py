"""scripts/mixing_batchnorm.py's gradient alignment and per-domain output layer (the experiment
script of README's mixing tables; its training runs take minutes, so only the parts are tested)."""
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import load_script

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mixing_batchnorm.py"


@pytest.fixture(scope="module")
def script():
    return load_script("mixing_batchnorm")


def flat(grads):
    return torch.cat([g.flatten() for g in grads if g is not None])


def test_pcgrad_removes_only_the_part_against_the_real_gradient(script):
    real = [torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 0.0]])]
    against = [torch.tensor([-1.0, 2.0]), torch.tensor([[0.0, 3.0]])]
    out = script.aligned(real, against, "pcgrad")
    assert abs(float(flat(out) @ flat(real))) < 1e-6  # nothing left pointing against the real gradient
    assert torch.allclose(flat(out), torch.tensor([0.0, 2.0, 0.0, 3.0]))  # the orthogonal part kept
    along = [torch.tensor([2.0, 1.0]), torch.tensor([[0.0, 1.0]])]
    assert torch.equal(flat(script.aligned(real, along, "pcgrad")), flat(along))  # agreeing: unchanged


def test_cosine_scales_by_agreement_and_drops_disagreement(script):
    real = [torch.tensor([1.0, 0.0])]
    assert torch.allclose(script.aligned(real, [torch.tensor([1.0, 1.0])], "cosine")[0], torch.tensor([1.0, 1.0]) * 2**-0.5)
    assert torch.equal(script.aligned(real, [torch.tensor([-1.0, 1.0])], "cosine")[0], torch.zeros(2))


def test_parameters_one_side_alone_reaches_keep_that_sides_gradient(script):
    # per-domain BatchNorm: the synthetic pairs' layers get no real gradient and keep their own
    real = [torch.tensor([1.0]), None]
    other = [torch.tensor([-1.0]), torch.tensor([5.0])]
    out = script.aligned(real, other, "pcgrad")
    assert torch.allclose(out[0], torch.zeros(1)) and torch.equal(out[1], torch.tensor([5.0]))
    assert script.aligned(other, real, "pcgrad")[1] is None


def test_domain_head_follows_the_domain_and_starts_as_the_same_layer(script):
    head = script.DomainHead(nn.Conv2d(4, 1, 1))
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    try:
        script.DomainBatchNorm.domain = 0
        first = head(x)
        script.DomainBatchNorm.domain = 1
        assert torch.equal(head(x), first)  # a copy at the start
        with torch.no_grad():
            head.heads[1].bias += 1
        assert torch.allclose(head(x), first + 1, atol=1e-6)  # (w.x + b) + 1 and w.x + (b + 1) round apart near 0
        script.DomainBatchNorm.domain = 0
        assert torch.equal(head(x), first)
    finally:
        script.DomainBatchNorm.domain = 0


@pytest.mark.parametrize("extra, message", [(["--synthetic-count", "0"], "positive count"),
                                            (["--synthetic-count", "50", "--trees", "detail"], "kept at 200"),
                                            (["--synthetic-count", "50", "--pairs", "translated"], "--pairs synthetic"),
                                            (["--keep-faithful", "200"], "--keep-faithful takes"),
                                            (["--keep-faithful", "0"], "--keep-faithful takes"),
                                            (["--keep-faithful", "5", "--pairs", "translated"], "--keep-faithful takes"),
                                            (["--eval-at", "1200"], "--eval-at takes"),
                                            (["--eval-at", "600", "0"], "--eval-at takes")])
def test_synthetic_counts_are_checked_before_any_work(extra, message):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(SCRIPT), "0", "domain", *extra], capture_output=True, text=True, timeout=120, check=False,
                          cwd=SCRIPT.parent.parent)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_scoring_on_the_way_leaves_the_run_as_it_was(drive_like, tmp_path):
    """--eval-at scores a copy mid-run; the run (dropout's random draws included) ends on the same weights."""
    import json
    import subprocess
    import sys

    def run(*extra):
        done = subprocess.run([sys.executable, str(SCRIPT), "0", "shared", "--real-share", "1", "--steps", "6", "--batch", "4",
                               "--drive", str(drive_like), "--output", str(tmp_path / "runs"), *extra],
                              capture_output=True, text=True, timeout=300, check=False, cwd=SCRIPT.parent.parent)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    plain = run()
    saved = next((tmp_path / "runs").glob("*seed0/model.safetensors"))
    weights = saved.read_bytes()
    scored = run("--eval-at", "2", "4")
    assert [line["eval_at"] for line in scored[:-1]] == [2, 4]
    assert sorted(p.name for p in (tmp_path / "runs" / "eval-at").iterdir()) == [f"{saved.parent.name}-step{n}" for n in (2, 4)]
    assert all(0 <= line["dice_chosen"] <= 1 for line in scored[:-1])
    assert next((tmp_path / "runs").glob("*seed0/model.safetensors")).read_bytes() == weights
    assert scored[-1]["dice"] == plain[-1]["dice"] and scored[-1]["auc"] == plain[-1]["auc"]


class ReadsBack:
    """A stand-in segmenter whose probability map is the photo's red channel / 255."""

    def probability(self, photo, fov, views=8):
        assert views == 1  # one view: 8 would take 6 s a photo
        return photo[..., 0] / 255.0


def test_most_faithful_keeps_the_pairs_whose_photo_shows_their_tree(script):
    import numpy as np

    size, trees = 16, np.zeros((4, 16, 16), bool)
    trees[:, 4:12, 8] = True
    photos = np.zeros((4, size, size, 3), np.uint8)
    photos[0][trees[0]] = 255  # the whole tree shown: Dice 1
    photos[1, 4:8, 8] = 255  # half of it: Dice 2/3
    photos[3][trees[3]] = 255
    photos[3, 0, :] = 255  # the tree and a false row of 16 px: Dice 16/32
    fovs = np.ones((4, size, size), bool)  # pair 2: nothing shown, Dice 0
    scores = script.fidelity_scores(photos, fovs, trees, ReadsBack())
    assert np.allclose(scores, [1.0, 2 / 3, 0.0, 0.5])
    kept_photos, kept_fovs, kept_maps = script.most_faithful((photos, fovs, trees), scores, 2)
    assert np.array_equal(kept_photos, photos[[0, 1]]) and np.array_equal(kept_maps, trees[[0, 1]]) and kept_fovs.shape == (2, size, size)
    kept_photos, _, _ = script.most_faithful((photos, fovs, trees), scores, 3)
    assert np.array_equal(kept_photos, photos[[0, 1, 3]])  # in their first order, not by score
    outside = np.zeros((4, size, size), bool)
    outside[:, 4:12, :] = True  # the false row lies outside this FOV: pair 3 now reads as faithful as pair 0
    assert np.allclose(script.fidelity_scores(photos, outside, trees, ReadsBack()), [1.0, 2 / 3, 0.0, 1.0])

