"""What the FID of this real set reacts to (figures printed): why the translator's photos score far
from the floor.

python scripts/fid_sensitivity.py [runs/prepared-256.npz] [checkpoints/pix2pix-grade ...]
Real half B (the floor's set) blurred, noised, colour-equalised, each scored against real half A
as `evaluate fundus` scores them; then each translator's photos of half B's trees as they are and
with white noise added, with the grid notch the translator applies and without it (raw output). Their
radial power spectrum beside the real photos' shows how much fine detail is missing; the power at
the Nyquist points shows the sub-pixel head's 2-px grid. About 1 min per line on a 2-core CPU.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.inference import FundusTranslator  # noqa: E402
from retinagan.metrics.evaluate_fundus import fid, inception, inception_features, nyquist_share, split_halves  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402


def blurred(photos: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(p).filter(ImageFilter.GaussianBlur(sigma))) for p in photos])


def noised(photos: np.ndarray, fovs: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, std, photos.shape) * fovs[..., None]
    return np.clip(photos + noise, 0, 255).astype(np.uint8)


def radial_power(photos: np.ndarray, bands: int = 8) -> np.ndarray:
    """Mean power of the green channel's spectrum in `bands` rings from low to high frequency."""
    green = photos[..., 1].astype(np.float32)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(green - green.mean(axis=(1, 2), keepdims=True)), axes=(1, 2))) ** 2
    size = green.shape[1]
    yy, xx = np.mgrid[-size // 2 : size // 2, -size // 2 : size // 2]
    ring = (np.sqrt(yy**2 + xx**2) / (size // 2) * bands).astype(int)
    return np.array([spectrum[:, ring == k].mean() for k in range(bands)])


def main(data: str, *translators: str) -> None:
    prepared = load_prepared(data)
    photos = prepared.images * prepared.fov[..., None]
    half_a = split_halves(prepared.ids)
    real_b, fovs_b, trees_b = photos[~half_a], prepared.fov[~half_a], prepared.vessels[~half_a]
    net = inception()
    feats_a = inception_features(net, photos[half_a], desc="real A")
    score = lambda made, name: print(f"{name:44s} FID {fid(inception_features(net, made, desc=name), feats_a):6.1f}", flush=True)  # noqa: E731
    means = real_b.reshape(len(real_b), -1, 3).mean(axis=1)
    variants = {
        "real B (the floor)": real_b,
        "real B, Gaussian blur sigma 0.7 px": blurred(real_b, 0.7),
        "real B, Gaussian blur sigma 1.0 px": blurred(real_b, 1.0),
        "real B, Gaussian blur sigma 1.5 px": blurred(real_b, 1.5),
        "real B, Gaussian blur sigma 2.5 px": blurred(real_b, 2.5),
        "real B, + white noise std 4": noised(real_b, fovs_b, 4),
        "real B, every photo the mean colour": np.clip(real_b * (means.mean(0) / means)[:, None, None], 0, 255).astype(np.uint8),
    }
    for name, made in variants.items():
        score(made, name)
    reference = radial_power(real_b)
    print("real B: share of the green power at the Nyquist points (S/2, 0), (0, S/2), (S/2, S/2): " + " ".join(f"{r:.3f}" for r in nyquist_share(real_b)))
    for folder in translators:
        translator = FundusTranslator.load(folder)
        name = Path(folder).name
        radius = translator.degrid_radius
        for label, translator.degrid_radius in (("grid notch", radius), ("raw output", 0)):
            made = translator.translate(trees_b, fovs_b, look_seed=list(range(len(trees_b))))
            score(made, f"{name} ({label}): photos of half B's trees")
            score(noised(made, fovs_b, 3), f"{name} ({label}): the same + white noise std 3")
            ratio = radial_power(made) / reference
            print(f"{name} ({label}): power vs real, low -> high frequency: " + " ".join(f"{r:.2f}" for r in ratio))
            print(f"{name} ({label}): share at the Nyquist points: " + " ".join(f"{r:.3f}" for r in nyquist_share(made)))


if __name__ == "__main__":
    args = sys.argv[1:] or ["runs/prepared-256.npz", "checkpoints/pix2pix-grade"]
    main(args[0], *(args[1:] or ["checkpoints/pix2pix-grade"]))
