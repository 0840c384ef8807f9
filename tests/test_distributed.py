"""Data-parallel training (torchrun, gloo on CPU) computes what one process computes with the
same global batch: 2 processes x 2 samples against 1 process x 4, a few real steps of each
training kind, compared on the logged losses and the final weights."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
TINY_AE = ["--model.latent-dim", "8", "--model.base-channels", "4", "--model.image-size", "128", "--model.feature-dim", "32"]
TINY_P2P = ["--model.base-channels", "4", "--model.image-size", "128", "--model.dropout", "0", "--disc-channels", "4"]
# fp32: bf16 (the default where the CPU has bf16 units) rounds sums of a split batch differently.
COMMON = ["--steps", "4", "--batch-size", "4", "--log-every", "2", "--device", "cpu", "--no-bf16"]


def train(args: list[str], output: Path, processes: int) -> Path:
    launcher = [sys.executable, "train.py"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "train.py"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launcher + args + ["--output", str(output)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return output


def losses(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def assert_same_run(single: Path, parallel: Path) -> None:
    a, b = losses(single), losses(parallel)
    assert [sorted(r) for r in a] == [sorted(r) for r in b] and len(a) >= 2
    for row_a, row_b in zip(a, b):
        for key in row_a:
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-4, abs=1e-5), (key, row_a, row_b)
    weights_a = load_file(str(single / "checkpoint" / "model.safetensors"))
    weights_b = load_file(str(parallel / "checkpoint" / "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    # Adam's first steps move each weight by about lr (1e-3) whatever the gradient's size, so a
    # float-rounding difference in a near-zero gradient can show as ~1e-5 in a few weights;
    # a real mismatch (per-process BatchNorm statistics, unaveraged gradients, other data)
    # moves most weights by ~1e-3.
    total, count = 0.0, 0
    for key in weights_a:
        torch.testing.assert_close(weights_b[key], weights_a[key], rtol=1e-3, atol=2e-4, msg=key)
        total += (weights_b[key].double() - weights_a[key].double()).abs().sum().item()
        count += weights_a[key].numel()
    assert total / count < 2e-6
    config = json.loads((parallel / "checkpoint" / "config.json").read_text())
    assert config["processes"] == 2 and config["steps"] == 4


@pytest.mark.parametrize("kind", ["aae-dual", "pix2pix", "pix2pix-detail"])
def test_two_processes_match_one_with_the_same_global_batch(kind, prepared_maps, tmp_path):
    if kind.startswith("pix2pix"):
        detail = ["--detail-disc-weight", "1"] if kind == "pix2pix-detail" else []  # + the detail discriminator's own BatchNorm and optimiser
        args = ["pix2pix", "--data", str(prepared_maps), "--holdout-every", "3", *TINY_P2P, *detail, *COMMON]
    else:
        args = ["aae", "--dual", "--data", str(prepared_maps), "--holdout-every", "3", *TINY_AE, *COMMON]
    assert_same_run(train(args, tmp_path / "one", 1), train(args, tmp_path / "two", 2))


def test_bf16_data_parallel_runs_and_stays_close(prepared_maps, tmp_path):
    """bf16 autocast under torchrun (BatchNorm statistics across processes kept in fp32)."""
    args = ["aae", "--dual", "--data", str(prepared_maps), "--holdout-every", "3", *TINY_AE, *COMMON[:-1], "--bf16"]
    a, b = losses(train(args, tmp_path / "one", 1)), losses(train(args, tmp_path / "two", 2))
    for row_a, row_b in zip(a, b):
        for key in row_a:
            assert row_b[key] == pytest.approx(row_a[key], rel=3e-2, abs=1e-3), (key, row_a, row_b)


def test_segmenter_two_processes_match_one(drive_like, tmp_path):
    args = ["segmenter", "--drive", str(drive_like), "--patch", "32", "--model.base-channels", "4", "--model.depth", "2",
            "--model.dropout", "0", *COMMON]
    assert_same_run(train(args, tmp_path / "one", 1), train(args, tmp_path / "two", 2))


def test_global_batch_must_divide(prepared_maps, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py"]
    args = ["vae", "--data", str(prepared_maps), *TINY_AE, "--steps", "2", "--batch-size", "3", "--output", str(tmp_path / "odd")]
    done = subprocess.run(launcher + args, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "must divide by the 2 processes" in done.stderr + done.stdout
