"""Agreement between the detected optic-disc side and the eye named in file names."""
from __future__ import annotations

from tqdm import tqdm

from retinagan.data.imageio import read_rgb
from retinagan.data.preprocess import find_optic_disc, fov_mask
from retinagan.data.readers import read_dataset
from retinagan.errors import DatasetError

# In an unflipped photo the disc lies on the nasal side: the image's right for a right eye.
EXPECTED_SIDE = {"right": "right", "left": "left"}


def laterality_agreement(path, progress: bool = True) -> dict:
    samples = [s for s in read_dataset(path, strict=False) if s.laterality]
    if not samples:
        raise DatasetError(f"{path}: no file names say which eye (_left/_right)")
    agree, disagreeing = 0, []
    for sample in tqdm(samples, desc="optic disc", disable=not progress):
        rgb = read_rgb(sample.image)
        side = find_optic_disc(rgb, fov_mask(rgb)).side
        if side == EXPECTED_SIDE[sample.laterality]:
            agree += 1
        else:
            disagreeing.append(sample.id)
    # Both eyes of one patient disagreeing together points at a mirrored camera, not the detector.
    patients = {i.rsplit("_", 1)[0] for i in disagreeing}
    both = sorted(p for p in patients if f"{p}_left" in disagreeing and f"{p}_right" in disagreeing)
    return {
        "images": len(samples),
        "agreement": agree / len(samples),
        "disagreeing": len(disagreeing),
        "patients_with_both_eyes_disagreeing": len(both),
    }
