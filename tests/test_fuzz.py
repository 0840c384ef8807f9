"""Fuzz-style sweep of every way data gets in (issue 7, item 4).

A seeded generator makes many bad inputs: truncated / bit-flipped / random / mislabelled image
files, odd PIL modes, extreme and decompression-bomb sizes, label CSVs with bad rows, and
checkpoint folders that are truncated, of the wrong kind, newer, doctored or pickles. Each must
give a sane result or the project's own one-line error naming the file, never a raw
PIL/OSError/ValueError/MemoryError traceback, a huge allocation or an unpickle; the app keeps
serving after each bad upload.
"""
from __future__ import annotations

import io
import json
import pickle
import resource
import shutil
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import app
from conftest import make_fundus
from retinagan.checkpoint import FORMAT_VERSION, load_model, load_training_state, read_config, save_model, save_training_state
from retinagan.data.imageio import open_image, read_mask, read_rgb, to_rgb_array
from retinagan.data.readers import read_dataset, read_graded
from retinagan.errors import CheckpointError, DatasetError, ImageError
from retinagan.models import build_model
from test_checkpoint import TINY_CONFIGS  # the repo's tiny model configs

pytestmark = pytest.mark.filterwarnings(  # PIL's own notes on the damaged TIFFs it then refuses
    "ignore:Corrupt EXIF data:UserWarning", "ignore:Truncated File Read:UserWarning"
)

SEED = 20240607
UNICODE = "fundus_é_眼"  # every generated file carries this in its name: messages must name it
PHOTO, VESSELS = make_fundus(96, 80, seed=3)  # (80, 96, 3) uint8, (80, 96) bool
GREY = np.asarray(Image.fromarray(PHOTO).convert("L"), dtype=np.float64)
MAP = VESSELS.astype(np.uint8) * 255
IMAGE_ERROR_WORDS = ("not an image", "damaged", "truncated", "too large", "megapixel", "at least", "no such file")


# --- the generator ----------------------------------------------------------------------------
def _rng(*key) -> np.random.Generator:
    return np.random.default_rng([SEED, *(zlib.crc32(str(k).encode()) for k in key)])


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_raw(width: int, height: int, depth: int, colour: int, rows: bytes = b"") -> bytes:
    """A PNG from its parts (IHDR declares any size; IDAT holds `rows`, filter bytes included)."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _png_resized_header(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR (CRC fixed) now declares width x height."""
    data = bytearray(_encode(Image.fromarray(PHOTO), "PNG"))
    data[8:33] = _chunk(b"IHDR", struct.pack(">II", width, height) + bytes(data[24:29]))
    return bytes(data)


def _jpeg_resized_header(width: int, height: int) -> bytes:
    data = bytearray(_encode(Image.fromarray(PHOTO), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_resized_header(width: int, height: int) -> bytes:
    data = bytearray(_encode(Image.fromarray(PHOTO), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def _bmp_header(width: int, height: int) -> bytes:
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)


def _tiff_header(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def _png_text_bomb(kind: bytes) -> bytes:
    """A valid 96x80 PNG with a zTXt/iCCP chunk inflating to 8 MB (PIL's text limit is 1 MB)."""
    data = _encode(Image.fromarray(PHOTO), "PNG")
    payload = (b"Comment\x00\x00" if kind == b"zTXt" else b"icc\x00\x00") + zlib.compress(b"\0" * (8 << 20), 9)
    return data[:33] + _chunk(kind, payload) + data[33:]


def _rgb48_png() -> bytes:
    values = PHOTO.astype(">u2") * 257
    rows = b"".join(b"\x00" + values[y].tobytes() for y in range(values.shape[0]))
    return _png_raw(values.shape[1], values.shape[0], 16, 2, rows)


def _grey_alpha16_png() -> bytes:
    values = np.dstack([GREY.astype(">u2") * 257, np.full(GREY.shape, 65535, ">u2")])
    rows = b"".join(b"\x00" + values[y].tobytes() for y in range(values.shape[0]))
    return _png_raw(values.shape[1], values.shape[0], 16, 4, rows)


def _float_with_holes() -> Image.Image:
    values = (GREY / 255).astype(np.float32)
    values[:4] = np.nan
    values[-4:] = np.inf
    values[:, :3] = -np.inf
    return Image.fromarray(values)


def _rgba_with_transparent_band() -> Image.Image:
    alpha = np.full(GREY.shape, 255, np.uint8)
    alpha[:10] = 0
    return Image.fromarray(np.dstack([PHOTO, alpha]))


def _lab(image: Image.Image) -> Image.Image:
    lab = image.convert("LAB")
    lab.info.pop("icc_profile", None)  # lcms stamps its profile with the time: not deterministic
    return lab


def _frames(fmt: str) -> bytes:
    first, second = Image.fromarray(PHOTO), Image.fromarray(255 - PHOTO)
    return _encode(first, fmt, save_all=True, append_images=[second])


def _rgba_ref() -> np.ndarray:
    ref = GREY.copy()
    ref[:10] = 0
    return ref


def _holes_ref() -> np.ndarray:
    ref = GREY.copy()
    ref[:4] = 0
    ref[-4:] = 255
    ref[:, :3] = 0
    return ref


@dataclass
class ImageCase:
    id: str
    suffix: str
    data: bytes | None  # None: the path is made by `make` instead
    expect: str  # "ok", "error" or "either" (decodes to something sane, or a clear error)
    words: tuple[str, ...] = IMAGE_ERROR_WORDS  # an error must say one of these
    grey: np.ndarray | None = None  # for "ok": what the photo should look like (grey levels)
    min_corr: float = 0.95
    mask: np.ndarray | None = None  # for "ok" vessel maps: what read_mask must give
    shape: tuple[int, int] = PHOTO.shape[:2]
    make: Callable[[Path], None] | None = None

    @property
    def name(self) -> str:
        return f"{UNICODE}_{self.id}{self.suffix}"

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if self.make is not None:
            self.make(path)
        else:
            path.write_bytes(self.data)
        return path


def image_cases() -> list[ImageCase]:
    photo = Image.fromarray(PHOTO)
    grey16 = (GREY.astype(np.uint16) * 257)
    valid = {
        "png": _encode(photo, "PNG"), "jpg": _encode(photo, "JPEG", quality=90),
        "progressive.jpg": _encode(photo, "JPEG", progressive=True), "tif": _encode(photo, "TIFF"),
        "lzw.tif": _encode(photo, "TIFF", compression="tiff_lzw"), "bmp": _encode(photo, "BMP"),
        "gif": _encode(photo, "GIF"), "webp": _encode(photo, "WEBP", lossless=True),
    }
    cases: list[ImageCase] = []
    for key, data in valid.items():
        suffix = "." + key.split(".")[-1]
        tag = key.replace(".", "_")
        # Truncation: keep the signature only, then cut at several points through the data.
        for cut in (8, 0.05, 0.3, 0.6, 0.9, 0.98):
            size = cut if isinstance(cut, int) else int(len(data) * cut)
            cases.append(ImageCase(f"truncated_{tag}_{cut}", suffix, data[:size], "error",
                                   ("truncated", "damaged", "not an image")))
        # Bit flips: a few random bits anywhere (headers included).
        for k in range(3):
            rng, flipped = _rng("flip", key, k), bytearray(data)
            for position in rng.integers(0, len(data), 1 + 2 * k):
                flipped[position] ^= 1 << int(rng.integers(0, 8))
            cases.append(ImageCase(f"bitflip_{tag}_{k}", suffix, bytes(flipped), "either"))
    # Non-images behind image suffixes.
    rng = _rng("random")
    not_images = {
        "empty.png": b"", "empty.jpg": b"", "text.png": b"fundus photo, honest\n",
        "html.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        "json.tif": b'{"image": "fundus.png", "grade": 2}', "svg.png": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        "pdf.png": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", "zip.jpg": b"PK\x03\x04" + rng.bytes(200),
        "pickle.png": pickle.dumps({"weights": [1, 2, 3]}), "nul.bmp": bytes(4096),
        "random_small.png": rng.bytes(17), "random.jpg": rng.bytes(3000), "random.tif": rng.bytes(65536),
        "random.gif": rng.bytes(777), "random.webp": rng.bytes(1234),
    }
    for key, data in not_images.items():
        stem, suffix = key.rsplit(".", 1)
        cases.append(ImageCase(f"notimage_{stem}_{suffix}", "." + suffix, data, "error", ("not an image",)))
    # A real magic number, then garbage: the decoder gets past identification.
    for magic, suffix in ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff\xe0", ".jpg"), (b"II*\x00", ".tif"),
                          (b"MM\x00*", ".tif"), (b"GIF89a", ".gif"), (b"BM", ".bmp"), (b"RIFF\x00\x10\x00\x00WEBPVP8 ", ".webp")):
        for k in range(2):
            data = magic + _rng("magic", magic, k).bytes(64 + 900 * k)
            cases.append(ImageCase(f"magic_{suffix[1:]}_{magic[:2].hex()}_{k}", suffix, data, "either"))
    # Valid files in every mode PIL can decode from disk: converted to sane RGB / masks.
    ok_modes = {
        "rgba.png": (_encode(_rgba_with_transparent_band(), "PNG"), _rgba_ref()),
        "la.png": (_encode(photo.convert("LA"), "PNG"), GREY),
        "p.png": (_encode(photo.convert("P"), "PNG"), GREY),
        "p_transparent.png": (_encode(photo.convert("P"), "PNG", transparency=0), None),
        "pa.tif": (_encode(photo.convert("PA"), "TIFF"), GREY),
        "l.png": (_encode(photo.convert("L"), "PNG"), GREY),
        "1.png": (_encode(photo.convert("1"), "PNG"), None),
        "i16.png": (_encode(Image.fromarray(grey16), "PNG"), GREY),
        "i16b.tif": (_encode(Image.fromarray(grey16.astype(">u2")), "TIFF"), GREY),
        "i32.tif": (_encode(Image.fromarray(grey16.astype(np.int32)), "TIFF"), GREY),
        "i16.pgm": (_encode(Image.fromarray(grey16.astype(np.int32)), "PPM"), GREY),
        "f.tif": (_encode(Image.fromarray((GREY / 255).astype(np.float32)), "TIFF"), GREY),
        "f_0_255.tif": (_encode(Image.fromarray(GREY.astype(np.float32)), "TIFF"), GREY),
        "f_nan_inf.tif": (_encode(_float_with_holes(), "TIFF"), _holes_ref()),
        "f.pfm": (_encode(Image.fromarray((GREY / 255).astype(np.float32)), "PPM"), GREY),
        "cmyk.jpg": (_encode(photo.convert("CMYK"), "JPEG"), GREY),
        "cmyk.tif": (_encode(photo.convert("CMYK"), "TIFF"), GREY),
        "ycbcr.jpg": (_encode(photo.convert("YCbCr"), "JPEG"), GREY),
        "lab.tif": (_encode(_lab(photo), "TIFF"), GREY),
        "rgb48.png": (_rgb48_png(), GREY),
        "la16.png": (_grey_alpha16_png(), GREY),
        "animated.gif": (_frames("GIF"), GREY),
        "multipage.tif": (_frames("TIFF"), GREY),
        "lossy.webp": (_encode(photo, "WEBP", quality=60), GREY),
        "rgb.bmp": (valid["bmp"], GREY),
    }
    for key, (data, grey) in ok_modes.items():
        stem, suffix = key.rsplit(".", 1)
        cases.append(ImageCase(f"mode_{stem}_{suffix}", "." + suffix, data, "ok", grey=grey, min_corr=0.9))
    # Vessel maps in odd encodings: read_mask must give the drawn map back.
    vessel_maps = {
        "1.png": _encode(Image.fromarray(MAP).convert("1"), "PNG"),
        "p.gif": _encode(Image.fromarray(MAP), "GIF"),
        "f01.tif": _encode(Image.fromarray(VESSELS.astype(np.float32)), "TIFF"),
        "i16_01.tif": _encode(Image.fromarray(VESSELS.astype(np.uint16)), "TIFF"),
        "i16.png": _encode(Image.fromarray(VESSELS.astype(np.uint16) * 65535), "PNG"),
        "rgba.png": _encode(Image.fromarray(MAP).convert("RGBA"), "PNG"),
        "lab.tif": _encode(_lab(Image.fromarray(MAP).convert("RGB")), "TIFF"),
        "cmyk.tif": _encode(Image.fromarray(MAP).convert("CMYK"), "TIFF"),
    }
    for key, data in vessel_maps.items():
        stem, suffix = key.rsplit(".", 1)
        cases.append(ImageCase(f"map_{stem}_{suffix}", "." + suffix, data, "ok", mask=VESSELS))
    # Extreme sizes.
    for width, height in ((1, 1), (3, 2000), (2000, 3), (31, 500)):
        data = _encode(Image.new("RGB", (width, height), (180, 90, 40)), "PNG")
        cases.append(ImageCase(f"size_{width}x{height}", ".png", data, "error", (f"{width}x{height}", "at least 32x32")))
    for width, height in ((32, 32), (32, 2000)):
        data = _encode(Image.new("RGB", (width, height), (180, 90, 40)), "PNG")
        cases.append(ImageCase(f"size_{width}x{height}", ".png", data, "ok", shape=(height, width)))
    # Decompression bombs: declared sizes far over the limit, refused before any pixel is decoded.
    bombs = {
        "png_100000x100000": (_png_resized_header(100_000, 100_000), ".png"),
        "png_2147483647sq": (_png_resized_header(2**31 - 1, 2**31 - 1), ".png"),
        "png_1x1000000000": (_png_resized_header(1, 10**9), ".png"),
        "png_7000x7000": (_png_resized_header(7000, 7000), ".png"),
        "png_raw_50000x50000": (_png_raw(50_000, 50_000, 8, 2), ".png"),
        "png_16bit_30000x30000": (_png_raw(30_000, 30_000, 16, 6), ".png"),
        "jpg_65000x65000": (_jpeg_resized_header(65_000, 65_000), ".jpg"),
        "jpg_7000x7000": (_jpeg_resized_header(7000, 7000), ".jpg"),
        "gif_65535x65535": (_gif_resized_header(65_535, 65_535), ".gif"),
        "bmp_100000x100000": (_bmp_header(100_000, 100_000), ".bmp"),
        "bmp_neg_100000": (_bmp_header(100_000, -100_000), ".bmp"),
        "tif_100000x100000": (_tiff_header(100_000, 100_000), ".tif"),
        "tif_7000x7000": (_tiff_header(7000, 7000), ".tif"),
        "png_ztxt_bomb": (_png_text_bomb(b"zTXt"), ".png"),
        "png_iccp_bomb": (_png_text_bomb(b"iCCP"), ".png"),
    }
    for key, (data, suffix) in bombs.items():
        cases.append(ImageCase(f"bomb_{key}", suffix, data, "error", ("too large", "megapixel", "damaged", "not an image")))
    # Things that are not files.
    cases += [
        ImageCase("path_missing", ".png", None, "error", ("no such file", "not found"), make=lambda p: None),
        ImageCase("path_directory", ".png", None, "error", ("no such file", "not found"), make=lambda p: p.mkdir()),
        ImageCase("path_dangling_link", ".png", None, "error", ("no such file", "not found"),
                  make=lambda p: p.symlink_to(p.with_name("nowhere.png"))),
    ]
    return cases


IMAGE_CASES = image_cases()
BYTES_CASES = [c for c in IMAGE_CASES if c.data is not None]


def _check_error(exc: Exception, name: str, words: tuple[str, ...]) -> None:
    message = str(exc)
    assert message.startswith(f"{name}: "), f"message does not name the file: {message!r}"
    assert "\n" not in message, f"not one line: {message!r}"
    assert any(w in message.lower() for w in words), f"message does not say what is wrong ({words}): {message!r}"


def _check_photo(rgb: np.ndarray, case: ImageCase) -> None:
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    if case.expect == "ok":
        assert rgb.shape[:2] == case.shape
        if case.grey is not None:
            corr = np.corrcoef(rgb.astype(np.float64).mean(2).ravel(), case.grey.ravel())[0, 1]
            assert corr > case.min_corr, f"decoded photo does not look like the original (correlation {corr:.2f})"
        assert rgb.max() > 0 or case.grey is None, "decoded to an all-black image"
    else:  # garbage that happened to decode: still a usable, bounded image
        assert min(rgb.shape[:2]) >= 32 and rgb.shape[0] * rgb.shape[1] <= 40_000_000


def _read_or_error(read, source, case: ImageCase, name: str):
    """The reader's result, or None after checking its error; anything but ImageError fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. NaN casts: silent garbage
        try:
            return read(source, name=name) if name is not None else read(source)
        except ImageError as exc:
            assert case.expect != "ok", f"a valid {case.id} image was refused: {exc}"
            _check_error(exc, name or case.name, case.words)
            return None


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.id for c in IMAGE_CASES])
def test_image_readers(case, tmp_path):
    """read_rgb and read_mask on the file: a sane array, or an ImageError naming the file."""
    path = case.write(tmp_path)
    rgb = _read_or_error(read_rgb, path, case, None)
    mask = _read_or_error(read_mask, path, case, None)
    assert (rgb is None) == (mask is None), "read_rgb and read_mask disagree on whether the file is usable"
    if case.expect == "error":
        assert rgb is None, f"{case.id} should have been refused"
        return
    if rgb is not None:
        _check_photo(rgb, case)
        assert mask.dtype == bool and mask.shape == rgb.shape[:2]
        if case.mask is not None:
            assert np.array_equal(mask, case.mask), f"vessel map changed: {np.mean(mask != case.mask):.1%} of pixels"


@pytest.mark.parametrize("case", BYTES_CASES, ids=[c.id for c in BYTES_CASES])
def test_upload_bytes(case):
    """The same bytes arriving as an upload (open_image on bytes) behave the same way."""
    rgb = _read_or_error(lambda data, name: to_rgb_array(open_image(data, name)), case.data, case, "upload é.bin")
    if case.expect == "error":
        assert rgb is None
    elif rgb is not None:
        _check_photo(rgb, case)


BOMBS = [c for c in IMAGE_CASES if c.id.startswith("bomb_")]


def test_decompression_bombs_are_refused_fast_and_without_allocating(tmp_path):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for case in BOMBS:
        path = case.write(tmp_path)
        start = time.perf_counter()
        with pytest.raises(ImageError) as info:
            read_rgb(path)
        assert time.perf_counter() - start < 1.0, f"{case.id} took {time.perf_counter() - start:.1f} s to refuse"
        _check_error(info.value, case.name, case.words)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 150, f"refusing the bombs raised peak memory by {grown_mib:.0f} MiB"


def test_generator_is_deterministic_and_broad():
    again = image_cases()
    assert [c.id for c in again] == [c.id for c in IMAGE_CASES]
    assert all(a.data == b.data for a, b in zip(again, IMAGE_CASES))
    assert len({c.id for c in IMAGE_CASES}) == len(IMAGE_CASES) > 150
    modes = {Image.open(io.BytesIO(c.data)).mode for c in IMAGE_CASES if c.expect == "ok"}
    assert {"RGBA", "LA", "P", "PA", "I;16", "I;16B", "I", "F", "CMYK", "LAB", "1", "L", "RGB"} <= modes


# --- the app's upload paths -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """An untrained tiny segmenter and vessel autoencoder: the app's upload path end to end, fast."""
    root = tmp_path_factory.mktemp("fuzz-checkpoints")
    torch.manual_seed(0)
    save_model(root / "segmenter", build_model("segmenter", {**TINY_SEGMENTER, "fov_width": 64}).eval(), "segmenter")
    save_model(root / "aae-tiny", build_model("aae", TINY_AAE).eval(), "aae")
    return root


TINY_AAE, TINY_SEGMENTER = TINY_CONFIGS["aae"], TINY_CONFIGS["segmenter"]


@pytest.fixture(scope="module")
def ui(tiny_checkpoints):
    """The app on the tiny models, one explorer for the whole sweep (as a running app has)."""
    previous, threads = dict(app.state), torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only add overhead
    app.state.update(explorer=None, checkpoints=str(tiny_checkpoints), real_trees={}, data=None)
    app._tree_cached.cache_clear()
    yield app
    app.state.clear()
    app.state.update(previous)
    app._tree_cached.cache_clear()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def good_files(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("good")
    Image.fromarray(PHOTO).save(folder / "good photo.png")
    Image.fromarray(MAP).save(folder / "good map.png")
    return str(folder / "good photo.png"), str(folder / "good map.png")


def _check_app_message(message: str, prefix: str, case: ImageCase) -> None:
    assert message.startswith(prefix) and "\n" not in message, message
    if case.expect == "error":
        _check_error(Exception(message[len(prefix):].strip()), case.name, case.words)


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.id for c in IMAGE_CASES])
def test_app_uploads(case, ui, tmp_path, good_files):
    """Segment and interpolate callbacks: a result or a message, never an exception; then good files work."""
    path = str(case.write(tmp_path))
    photo, vessels, overlay, message = ui.segment_upload(path)
    if photo is None:
        assert vessels is None and overlay is None
        _check_app_message(message, "**Could not use this file:**", case)
    else:
        assert case.expect != "error", f"{case.id} was accepted: {message}"
        assert photo.dtype == np.uint8 and vessels.shape == photo.shape[:2] and "photo" in message
    strip, gif, _, _, message = ui.interpolate("aae-tiny", None, path, None, good_files[1], 3, "linear", "unknown")
    if strip is None:
        assert gif is None
        _check_app_message(message, "**Could not do that:**", case)
    else:
        assert case.expect != "error" and strip.ndim >= 2 and "3 frames" in message
    # ... and the app goes on serving (the good photo's tree is cached after the first case, as in the app).
    assert ui.segment_upload(good_files[0])[0] is not None
    assert ui.interpolate("aae-tiny", None, good_files[0], None, good_files[1], 2, "linear", "unknown")[0] is not None
    assert ui.generate(0, "unknown", "aae-tiny")[0] is not None


def test_app_after_the_sweep(ui, good_files):
    """After every bad upload above, fresh work on good files still succeeds."""
    ui._tree_cached.cache_clear()
    photo, vessels, _, message = ui.segment_upload(good_files[0])
    assert photo is not None and vessels.shape == photo.shape[:2], message
    assert ui.interpolate("aae-tiny", None, good_files[0], None, good_files[1], 3, "spherical", "unknown")[0] is not None
    assert ui.compare(None, good_files[0], 0)[0] is not None


# --- label CSVs ---------------------------------------------------------------------------------
CSV_IMAGES = ("a.png", "b.png", f"{UNICODE}.png", "c.jpeg")


@dataclass
class CsvCase:
    id: str
    data: bytes
    expect: list[tuple[str, int]] | None = None  # (file stem, grade) of each sample; None: an error
    words: tuple[str, ...] = ()  # every one must be in the message
    row_level: bool = False  # strict=False then drops the bad rows instead of raising


def _csv(text: str) -> bytes:
    return text.encode("utf-8")


def csv_cases() -> list[CsvCase]:
    rng = _rng("csv")
    cases = [
        CsvCase("plain", _csv("image,level\na,0\nb,4\n"), [("a", 0), ("b", 4)]),
        CsvCase("bom", b"\xef\xbb\xbf" + _csv("image,level\na,1\n"), [("a", 1)]),
        CsvCase("crlf", _csv("image,level\r\na,2\r\nb,3\r\n"), [("a", 2), ("b", 3)]),
        CsvCase("unicode_name", _csv(f"image,level\n{UNICODE},2\n"), [(UNICODE, 2)]),
        CsvCase("unicode_name_with_suffix", _csv(f"image,level\n{UNICODE}.PNG,3\n"), [(UNICODE, 3)]),
        CsvCase("aptos_form", _csv("id_code,diagnosis\nc,4\n"), [("c", 4)]),
        CsvCase("idrid_form_spaces", _csv("Image name , Retinopathy grade ,Risk of macular edema \na,1,0\n"), [("a", 1)]),
        CsvCase("whitespace_and_quotes", _csv('image,level\n"a"," 2 "\n  b , 1 \n'), [("a", 2), ("b", 1)]),
        CsvCase("float_grade", _csv("image,level\na,3.0\n"), [("a", 3)]),
        CsvCase("blank_lines", _csv("image,level\n\na,0\n\n\nb,1\n\n"), [("a", 0), ("b", 1)]),
        CsvCase("trailing_commas", _csv("image,level\na,0,\nb,1,,\n"), [("a", 0), ("b", 1)]),
        CsvCase("extra_fields", _csv("image,level\na,0\nb,1,left,oops\n"), None, ("line 3", "4 fields", "header 2")),
        CsvCase("empty", b"", None, ("no rows",)),
        CsvCase("header_only", _csv("image,level\n"), None, ("no rows",)),
        CsvCase("only_blank_lines", _csv("\n\n\n"), None, ("no rows",)),
        CsvCase("missing_grade_column", _csv("image,grade\na,1\n"), None, ("not a known grading form", "'grade'")),
        CsvCase("missing_id_column", _csv("level\n1\n"), None, ("not a known grading form",)),
        CsvCase("semicolon_delimiter", _csv("image;level\na;0\n"), None, ("not a known grading form", "image;level")),
        CsvCase("tab_delimiter", _csv("image\tlevel\na\t0\n"), None, ("not a known grading form",)),
        CsvCase("only_commas", _csv(",,,\n,,,\n"), None, ("not a known grading form",)),
        CsvCase("utf16", "image,level\na,0\n".encode("utf-16"), None, ("not a utf-8",)),
        CsvCase("latin1", "image,level\nœil,0\n".encode("cp1252"), None, ("not a utf-8",)),
        CsvCase("png_bytes", _encode(Image.fromarray(PHOTO), "PNG"), None, ("not a utf-8",)),
        CsvCase("random_bytes", rng.bytes(500), None, ("not a utf-8",)),
        CsvCase("nul_in_header", b"image,le\x00vel\na,1\n", None, ()),
        CsvCase("huge_field", _csv("image,level\n" + "a" * 200_000 + ",0\n"), None, ("malformed csv", "field limit")),
        CsvCase("missing_files", _csv("image,level\na,0\nghost,1\nfantôme_眼,2\n"), None,
                ("2 name missing files", "ghost", "fantôme_眼"), row_level=True),
        CsvCase("path_traversal", _csv("image,level\n../../etc/passwd,1\n"), None, ("missing files", "../../etc/passwd"), row_level=True),
        CsvCase("duplicate_ids", _csv("image,level\na,0\nb,1\na,0\n"), None, ("repeat an id (a)",), row_level=True),
        CsvCase("unterminated_quote", _csv('image,level\na,0\n"b,1\n'), None, ("missing files",), row_level=True),
        CsvCase("short_row", _csv("image,level\na\nb,1\n"), None, ("unknown grades (a='')",), row_level=True),
    ]
    for k, grade in enumerate(("x", "-1", "5", "2.5", "", "nan", "inf", "-inf", "1e400", "0x1", "1_0", "true")):
        cases.append(CsvCase(f"bad_grade_{k}", _csv(f"image,level\na,{grade}\nb,1\n"), None,
                             ("1 have unknown grades", f"a={grade!r}"), row_level=True))
    return cases


CSV_CASES = csv_cases()


@pytest.fixture(scope="module")
def csv_images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("csv") / "images"
    folder.mkdir()
    for name in CSV_IMAGES:
        Image.fromarray(PHOTO[:64, :64]).save(folder / name)
    return folder


@pytest.mark.parametrize("case", CSV_CASES, ids=[c.id for c in CSV_CASES])
def test_label_csvs(case, csv_images, tmp_path):
    name = f"étiquettes_{case.id}.csv"
    path = tmp_path / name
    path.write_bytes(case.data)
    if case.expect is not None:
        samples, report = read_graded(path, csv_images)
        assert report.ok and [(s.image.stem, s.grade) for s in samples] == case.expect
        return
    with pytest.raises(DatasetError) as info:
        read_graded(path, csv_images)
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    for word in case.words:
        assert word in message.lower() or word in message, f"{word!r} not in {message!r}"
    if case.row_level:  # lenient mode keeps the good rows and lists the bad ones
        samples, report = read_graded(path, csv_images, strict=False)
        assert not report.ok and report.summary() == message
        assert all(s.image.is_file() and s.grade in range(5) for s in samples)
    else:
        with pytest.raises(DatasetError):
            read_graded(path, csv_images, strict=False)
    # read_dataset finds the same file in a folder and says the same
    folder = tmp_path / "set"
    shutil.copytree(csv_images, folder / "images")
    shutil.copy(path, folder / "labels.csv")
    with pytest.raises(DatasetError, match="labels.csv: "):
        read_dataset(folder)


# --- checkpoints ----------------------------------------------------------------------------------
class _Payload:
    """Unpickling this runs code: it writes the marker file (the proof that something unpickled)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",))


def _torch_pickle(marker: Path, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save({"stem.0.weight": torch.zeros(4, 1, 3, 3), "evil": _Payload(marker)}, buffer,
               _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def _npy_pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("ck") / "segmenter-tiny", build_model("segmenter", TINY_SEGMENTER).eval(), "segmenter")




def _edit_config(**changes):
    def edit(folder: Path, marker: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key == "model_config" and isinstance(value, dict) and value.get("_merge"):
                value = {**config["model_config"], **{k: v for k, v in value.items() if k != "_merge"}}
            if value is _DROP:
                config.pop(key)
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))

    return edit


_DROP = object()


def _write(name: str, data: bytes | Callable[[Path], bytes]):
    def edit(folder: Path, marker: Path) -> None:
        (folder / name).write_bytes(data(marker) if callable(data) else data)

    return edit


def _cut_weights(where: str):
    def edit(folder: Path, marker: Path) -> None:
        weights = (folder / "model.safetensors").read_bytes()
        header = struct.unpack("<Q", weights[:8])[0]
        size = {"0": 0, "7": 7, "8": 8, "half_header": 8 + header // 2, "header": 8 + header,
                "half": len(weights) // 2, "last_byte": len(weights) - 1}[where]
        (folder / "model.safetensors").write_bytes(weights[:size])

    return edit


def _corrupt_header(folder: Path, marker: Path) -> None:
    weights = bytearray((folder / "model.safetensors").read_bytes())
    header = struct.unpack("<Q", weights[:8])[0]
    rng = _rng("header")
    for position in rng.integers(8, 8 + header, 6):
        weights[position] = int(rng.integers(32, 127))
    (folder / "model.safetensors").write_bytes(bytes(weights))


def _weights_of(kind: str, config: dict):
    def edit(folder: Path, marker: Path) -> None:
        other = save_model(folder.parent / f"{folder.name}-other", build_model(kind, config), kind)
        shutil.copy(other / "model.safetensors", folder / "model.safetensors")

    return edit


def _renamed_tensor(folder: Path, marker: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    key = min(state)
    state["renamed." + key] = state.pop(key)
    save_file(state, str(folder / "model.safetensors"))


def _weights_only_elsewhere(filename: str, data: Callable[[Path], bytes]):
    def edit(folder: Path, marker: Path) -> None:
        (folder / "model.safetensors").unlink()
        (folder / filename).write_bytes(data(marker))

    return edit


def _config_bytes(data: bytes | Callable[[Path], bytes]):
    return _write("config.json", data)


CHECKPOINT_CASES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    # damaged weights
    **{f"weights_cut_{w}": (_cut_weights(w), ("damaged or truncated",))
       for w in ("0", "7", "8", "half_header", "header", "half", "last_byte")},
    "weights_random": (_write("model.safetensors", _rng("weights").bytes(50_000)), ("damaged or truncated",)),
    "weights_zeros": (_write("model.safetensors", bytes(50_000)), ("damaged or truncated",)),
    "weights_header_length_huge": (_write("model.safetensors", struct.pack("<Q", 2**63) + b"{}"), ("damaged or truncated",)),
    "weights_header_json_bomb": (_write("model.safetensors", struct.pack("<Q", 20_000) + b"[" * 10_000 + b"]" * 10_000),
                                 ("damaged or truncated",)),
    "weights_header_bytes_flipped": (_corrupt_header, ("damaged or truncated",)),
    "weights_text": (_write("model.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n"),
                     ("damaged or truncated",)),
    "weights_directory": (lambda f, m: ((f / "model.safetensors").unlink(), (f / "model.safetensors").mkdir()), ("no model.safetensors",)),
    "weights_missing": (lambda f, m: (f / "model.safetensors").unlink(), ("no model.safetensors",)),
    "weights_of_another_kind": (_weights_of("aae", TINY_AAE), ("do not fit",)),
    "weights_of_a_wider_segmenter": (_weights_of("segmenter", {"base_channels": 8, "depth": 2}), ("do not fit",)),
    "weights_renamed_tensor": (_renamed_tensor, ("do not fit",)),
    # pickles where weights are expected: never unpickled
    "pickle_raw": (_write("model.safetensors", lambda m: pickle.dumps(_Payload(m))), ("damaged or truncated",)),
    "pickle_protocol0": (_write("model.safetensors", lambda m: pickle.dumps(_Payload(m), protocol=0)), ("damaged or truncated",)),
    "pickle_torch_zip": (_write("model.safetensors", _torch_pickle), ("damaged or truncated",)),
    "pickle_torch_legacy": (_write("model.safetensors", lambda m: _torch_pickle(m, legacy=True)), ("damaged or truncated",)),
    "pickle_numpy_object": (_write("model.safetensors", _npy_pickle), ("damaged or truncated",)),
    "pickle_beside_as_model_pt": (_weights_only_elsewhere("model.pt", _torch_pickle), ("no model.safetensors",)),
    "pickle_beside_as_pytorch_model_bin": (_weights_only_elsewhere("pytorch_model.bin", _torch_pickle), ("no model.safetensors",)),
    "pickle_as_config": (_config_bytes(lambda m: pickle.dumps(_Payload(m))), ("config.json is damaged",)),
    # config.json
    "config_missing": (lambda f, m: (f / "config.json").unlink(), ("no config.json",)),
    "config_directory": (lambda f, m: ((f / "config.json").unlink(), (f / "config.json").mkdir()), ("no config.json",)),
    "config_empty": (_config_bytes(b""), ("config.json is damaged",)),
    "config_invalid_json": (_config_bytes(b'{"kind": "segmenter", format_version: 1'), ("config.json is damaged",)),
    "config_truncated": (lambda f, m: (f / "config.json").write_bytes((f / "config.json").read_bytes()[:40]), ("config.json is damaged",)),
    "config_deep_nesting": (_config_bytes(b"[" * 100_000 + b"]" * 100_000), ("config.json is damaged",)),
    "config_binary": (_config_bytes(_rng("config").bytes(300)), ("config.json is damaged",)),
    "config_list": (_config_bytes(b"[1, 2]"), ("lacks 'kind' or 'format_version'",)),
    "config_null": (_config_bytes(b"null"), ("lacks 'kind' or 'format_version'",)),
    "config_no_kind": (_edit_config(kind=_DROP), ("lacks 'kind' or 'format_version'",)),
    "config_no_version": (_edit_config(format_version=_DROP), ("lacks 'kind' or 'format_version'",)),
    "format_newer": (_edit_config(format_version=FORMAT_VERSION + 1), ("newer than this retinagan reads", "upgrade")),
    "format_far_future": (_edit_config(format_version=10**30), ("newer than this retinagan reads",)),
    "format_string": (_edit_config(format_version="1"), ("invalid format_version '1'",)),
    "format_float": (_edit_config(format_version=1.5), ("invalid format_version 1.5",)),
    "format_bool": (_edit_config(format_version=True), ("invalid format_version true",)),
    "format_zero": (_edit_config(format_version=0), ("invalid format_version 0",)),
    "kind_unknown": (_edit_config(kind="teleporter"), ("unknown model kind 'teleporter'",)),
    "kind_list": (_edit_config(kind=["segmenter"]), ("invalid kind",)),
    "kind_null": (_edit_config(kind=None), ("invalid kind none",)),
    "kind_other": (_edit_config(kind="aae"), ("does not know",)),
    "model_config_null": (_edit_config(model_config=None), ("model_config that is not a json object",)),
    "model_config_list": (_edit_config(model_config=[4, 2]), ("model_config that is not a json object",)),
    "model_config_missing": (_edit_config(model_config=_DROP), ("do not fit",)),
    "model_config_unknown_field": (_edit_config(model_config={"_merge": True, "warp_drive": 9}), ("warp_drive",)),
    "model_config_wrong_type": (_edit_config(model_config={"_merge": True, "base_channels": "four"}), ("does not describe a segmenter",)),
    "model_config_negative": (_edit_config(model_config={"_merge": True, "base_channels": -4}), ("does not describe a segmenter",)),
    "model_config_fractional": (_edit_config(model_config={"_merge": True, "base_channels": 4.5}), ("does not describe a segmenter",)),
    "model_config_zero_depth": (_edit_config(model_config={"_merge": True, "depth": 0}), ("do not fit",)),
    # a doctored width that would need ~100 GB: refused from the file size, before allocating
    "model_config_memory_bomb": (_edit_config(model_config={"_merge": True, "base_channels": 4096, "depth": 4}),
                                 ("do not fit", "bytes")),
}


@pytest.fixture
def no_unpickling(monkeypatch):
    """Records every call into pickle / torch.load / numpy.load while a checkpoint loads."""
    calls: list[str] = []

    def spy(name, real):
        def wrapper(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called while loading a checkpoint")

        monkeypatch.setattr(*real, wrapper)

    spy("pickle.load", (pickle, "load"))
    spy("pickle.loads", (pickle, "loads"))
    spy("pickle.Unpickler", (pickle, "Unpickler"))
    spy("torch.load", (torch, "load"))
    spy("numpy.load", (np, "load"))
    return calls


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES), ids=list(CHECKPOINT_CASES))
def test_checkpoints(case, good_checkpoint, tmp_path, no_unpickling):
    edit, words = CHECKPOINT_CASES[case]
    folder = tmp_path / f"ck-{UNICODE}-{case}"
    shutil.copytree(good_checkpoint, folder)
    marker = tmp_path / "marker"
    edit(folder, marker)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    expected_kind = None if case.startswith("kind_") else "segmenter"
    with pytest.raises(CheckpointError) as info:
        load_model(folder, expected_kind=expected_kind)
    elapsed, grown_mib = time.perf_counter() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    message = str(info.value)
    assert message.startswith(f"checkpoint {folder}: ") and "\n" not in message, message
    for word in words:
        assert word in message.lower() or word in message, f"{word!r} not in {message!r}"
    assert not marker.exists() and not no_unpickling, "something was unpickled"
    assert elapsed < 2 and grown_mib < 150, f"refusing took {elapsed:.1f} s and {grown_mib:.0f} MiB"
    if "weights" not in case and "pickle" not in case and "model_config" not in case:
        with pytest.raises(CheckpointError):
            read_config(folder, "segmenter")  # the config check alone refuses it too


def test_checkpoint_sweep_covers_the_issue_and_the_good_one_loads(good_checkpoint, no_unpickling):
    assert len(CHECKPOINT_CASES) >= 50
    assert {"weights_cut_half", "kind_other", "format_newer", "pickle_torch_zip", "model_config_memory_bomb"} <= set(CHECKPOINT_CASES)
    _, config = load_model(good_checkpoint, expected_kind="segmenter")
    assert config["kind"] == "segmenter" and not no_unpickling


def test_payloads_are_live(tmp_path):
    """Control: the pickles above really would run code if anything unpickled them."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.read_text() == "unpickled"
    marker.unlink()
    torch.load(io.BytesIO(_torch_pickle(marker)), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("damage", ["pickle", "truncated", "random", "json_deep", "json_missing"])
def test_training_state(damage, tmp_path, no_unpickling):
    """A resume state (state-*/state.safetensors + state.json) damaged: CheckpointError, nothing unpickled."""
    module = build_model("segmenter", TINY_SEGMENTER)
    folder = save_training_state(tmp_path / "run", 5, {"m": module}, {}, {})
    marker = tmp_path / "marker"
    tensors, meta = folder / "state.safetensors", folder / "state.json"
    if damage == "pickle":
        tensors.write_bytes(_torch_pickle(marker))
    elif damage == "truncated":
        tensors.write_bytes(tensors.read_bytes()[:1000])
    elif damage == "random":
        tensors.write_bytes(_rng("state").bytes(5000))
    elif damage == "json_deep":
        meta.write_text("[" * 100_000 + "]" * 100_000)
    else:
        meta.unlink()
    with pytest.raises(CheckpointError, match=r"training state .*: damaged"):
        load_training_state(folder, {"m": module}, {}, {})
    assert not marker.exists() and not no_unpickling


def test_explorer_and_app_with_broken_checkpoints(tiny_checkpoints, tmp_path, good_files, no_unpickling):
    """A checkpoints folder full of damaged models: the app lists the problems and serves the good one."""
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny_checkpoints, root)
    marker = tmp_path / "marker"
    good = root / "aae-tiny"

    def variant(name: str, edit) -> None:
        shutil.copytree(good, root / name)
        edit(root / name, marker)

    variant("aae-truncated", _cut_weights("half"))
    variant("aae-pickle", _write("model.safetensors", _torch_pickle))
    variant("aae-newer", _edit_config(format_version=FORMAT_VERSION + 1))
    variant("aae-invalid-json", _config_bytes(b"{"))
    variant("aae-kind-list", _edit_config(kind=["aae"]))
    variant("aae-no-size", _edit_config(model_config={"latent_dim": 8}))
    variant("aae-size-text", _edit_config(model_config={**TINY_AAE, "image_size": "64"}))
    variant("aae-memory-bomb", _edit_config(model_config={**TINY_AAE, "feature_dim": 10**6, "latent_dim": 10**5}))
    variant("aae-atlas-pickle", _write("atlas.json", b'{"meta": [], "labels": [], "method": "pca"}'))
    (root / "aae-atlas-pickle" / "atlas.safetensors").write_bytes(_torch_pickle(marker))
    (root / "not-a-model").mkdir()
    (root / "stray-file.pt").write_bytes(_torch_pickle(marker))

    previous = dict(app.state)
    app.state.update(explorer=None, checkpoints=str(root), real_trees={}, data=None)
    app._tree_cached.cache_clear()
    try:
        ex = app.explorer()
        assert ex.names() == ["aae-atlas-pickle", "aae-memory-bomb", "aae-pickle", "aae-tiny", "aae-truncated"]
        for name in ("aae-newer", "aae-invalid-json", "aae-kind-list", "aae-no-size", "aae-size-text", "not-a-model"):
            assert any(name in problem for problem in ex.problems), name
        for name, words in (("aae-truncated", "damaged or truncated"), ("aae-pickle", "damaged or truncated"),
                            ("aae-memory-bomb", "do not fit")):
            vessels, _, message = app.generate(1, "unknown", name)
            assert vessels is None and message.startswith("**Could not do that:**") and words in message and name in message
        assert app.compare(None, good_files[1], 0)[0] is None  # compare runs every model: one message
        # a damaged atlas: the model works without it, and the problem is listed
        assert app.generate(1, "unknown", "aae-atlas-pickle")[0] is not None
        assert "no atlas" in app.slider_updates("aae-atlas-pickle")[0]["label"]
        assert "no atlas" in app.latent_map("aae-atlas-pickle", "source", 0)[1]
        assert any("atlas unreadable" in problem for problem in ex.problems)
        assert app.generate(1, "unknown", "aae-tiny")[0] is not None
        assert app.interpolate("aae-tiny", None, good_files[0], None, good_files[1], 2, "linear", "unknown")[0] is not None
        assert len(app.table_rows()) == len(ex.names())
    finally:
        app.state.clear()
        app.state.update(previous)
        app._tree_cached.cache_clear()
    assert not marker.exists() and not no_unpickling
