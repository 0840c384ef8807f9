"""Dataset readers for the layouts users have on disk.

Each reader returns a list of Sample records (paths and labels only; nothing decoded), so a
whole collection can be checked before any training starts.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from retinagan.errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".ppm"}
GRADES = range(5)  # ICDR 0 (no DR) .. 4 (proliferative)


@dataclass
class Sample:
    image: Path  # colour fundus photo
    id: str  # unique within its source
    source: str  # dataset name, e.g. "drive", "eyepacs"
    vessels: Path | None = None  # hand-drawn vessel map, where the set has one
    mask: Path | None = None  # field-of-view mask, where the set has one
    grade: int | None = None  # ICDR grade, where known
    laterality: str | None = None  # "left"/"right" eye, where the file name says
    extra: dict = field(default_factory=dict)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: folder {path} not found")
    return path


def read_drive(root: str | Path, split: str = "training") -> list[Sample]:
    """DRIVE: {training,test}/{images,1st_manual,mask}; 21_training.tif, 21_manual1.gif, 21_training_mask.gif."""
    base = _require_dir(Path(root) / split, f"DRIVE {split} split")
    images = _require_dir(base / "images", "DRIVE images")
    samples = []
    for image in _images_in(images):
        number = image.stem.split("_")[0]
        manual = base / "1st_manual" / f"{number}_manual1.gif"
        mask = base / "mask" / f"{image.stem}_mask.gif"
        samples.append(
            Sample(
                image=image,
                id=f"drive-{image.stem}",
                source="drive",
                vessels=manual if manual.is_file() else None,
                mask=mask if mask.is_file() else None,
            )
        )
    if not samples:
        raise DatasetError(f"DRIVE {split}: no images in {images}")
    return samples


def _laterality(stem: str) -> str | None:
    lowered = stem.lower()
    if lowered.endswith("_left") or re.search(r"\d+l$", lowered):
        return "left"
    if lowered.endswith("_right") or re.search(r"\d+r$", lowered):
        return "right"
    return None


def read_stare(root: str | Path) -> list[Sample]:
    """STARE: im0001.ppm photos; vessel labels im0001.ah.ppm (Hoover) or .vk.ppm anywhere below root."""
    files = [p for p in Path(_require_dir(Path(root), "STARE")).rglob("*") if p.is_file()]
    labels: dict[str, Path] = {}
    for p in sorted(files, key=lambda p: ".vk." in p.name):  # prefer Hoover's .ah labels
        match = re.fullmatch(r"(im\d+)\.(ah|vk)\.(ppm|png|gif)", p.name.lower())
        if match:
            labels.setdefault(match.group(1), p)
    photos = sorted(p for p in files if re.fullmatch(r"im\d+\.(ppm|png|jpg|tif)", p.name.lower()))
    samples = [Sample(image=p, id=f"stare-{p.stem}", source="stare", vessels=labels.get(p.stem.lower())) for p in photos]
    if not samples:
        raise DatasetError(f"STARE: no imNNNN photos under {root}")
    return samples


def read_chase(root: str | Path) -> list[Sample]:
    """CHASE_DB1: Image_01L.jpg with Image_01L_1stHO.png (first observer) beside it."""
    files = {p.name: p for p in Path(_require_dir(Path(root), "CHASE_DB1")).rglob("*") if p.is_file()}
    samples = []
    for name, path in sorted(files.items()):
        if re.fullmatch(r"image_\d+[lr]\.(jpg|png|tif)", name.lower()):
            manual = files.get(f"{path.stem}_1stHO.png")
            samples.append(
                Sample(image=path, id=f"chase-{path.stem}", source="chase", vessels=manual, laterality=_laterality(path.stem))
            )
    if not samples:
        raise DatasetError(f"CHASE_DB1: no Image_NNX photos under {root}")
    return samples


def read_hrf(root: str | Path) -> list[Sample]:
    """HRF: images/01_dr.JPG, manual1/01_dr.tif, mask/01_dr_mask.tif (h healthy, dr, g glaucoma)."""
    base = _require_dir(Path(root), "HRF")
    images = _require_dir(base / "images", "HRF images")

    def find(folder: str, stem: str) -> Path | None:
        hits = sorted((base / folder).glob(f"{stem}.*")) if (base / folder).is_dir() else []
        return hits[0] if hits else None

    samples = []
    for image in _images_in(images):
        group = image.stem.split("_")[-1].lower()
        samples.append(
            Sample(
                image=image,
                id=f"hrf-{image.stem}",
                source="hrf",
                vessels=find("manual1", image.stem),
                mask=find("mask", f"{image.stem}_mask"),
                extra={"group": {"h": "healthy", "dr": "diabetic retinopathy", "g": "glaucoma"}.get(group, group)},
            )
        )
    if not samples:
        raise DatasetError(f"HRF: no images in {images}")
    return samples


# Column names of the graded label files: (id column, grade column), lower-cased.
GRADE_COLUMNS = [
    ("image", "level"),  # EyePACS / Kaggle 2015
    ("id_code", "diagnosis"),  # APTOS 2019
    ("image name", "retinopathy grade"),  # IDRiD grading, Messidor
]


@dataclass
class LabelReport:
    """Problems found in a label file; empty lists mean a clean file."""

    path: Path
    rows: int = 0
    missing_files: list[str] = field(default_factory=list)
    bad_grades: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_files or self.bad_grades or self.duplicates)

    def summary(self) -> str:
        def few(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

        parts = [f"{self.path.name}: {self.rows} rows"]
        if self.missing_files:
            parts.append(f"{len(self.missing_files)} name missing files ({few(self.missing_files)})")
        if self.bad_grades:
            parts.append(f"{len(self.bad_grades)} have unknown grades ({few(self.bad_grades)})")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} repeat an id ({few(self.duplicates)})")
        return "; ".join(parts)


def _read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a .csv or .xls label file as dicts with lower-cased, stripped keys."""
    if path.suffix.lower() == ".xls":
        try:
            import xlrd
        except ImportError:
            raise DatasetError(f"{path.name}: reading .xls needs the xlrd package (pip install xlrd)") from None
        try:
            sheet = xlrd.open_workbook(str(path)).sheet_by_index(0)
        except Exception as exc:  # xlrd raises its own error types for damaged files
            raise DatasetError(f"{path.name}: cannot read the spreadsheet ({exc})") from None
        header = [str(c.value).strip().lower() for c in sheet.row(0)]
        rows = []
        for r in range(1, sheet.nrows):
            values = [c.value for c in sheet.row(r)]
            rows.append({h: _cell(v) for h, v in zip(header, values)})
        return rows
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = []
            for row in reader:
                extra = row.pop(None, [])  # fields beyond the header's; empty ones (trailing commas) are harmless
                if any(value.strip() for value in extra):
                    raise DatasetError(
                        f"{path.name}: line {reader.line_num} has {len(reader.fieldnames) + len(extra)} fields, "
                        f"the header {len(reader.fieldnames)}"
                    )
                rows.append({(k or "").strip().lower(): (v or "").strip() for k, v in row.items()})
            return rows
    except UnicodeDecodeError:
        raise DatasetError(f"{path.name}: not a UTF-8 text CSV") from None
    except csv.Error as exc:
        raise DatasetError(f"{path.name}: malformed CSV ({exc})") from None


def _cell(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_graded(
    labels: str | Path, images: str | Path | None = None, source: str | None = None, strict: bool = True
) -> tuple[list[Sample], LabelReport]:
    """A graded label file (EyePACS, APTOS, IDRiD, Messidor forms) and its image folder.

    images defaults to an `images/` folder beside the label file, else the file's folder.
    With strict=True any problem raises DatasetError with a summary; otherwise bad rows are
    dropped and listed in the report.
    """
    labels = Path(labels)
    if not labels.is_file():
        raise DatasetError(f"label file {labels} not found")
    if images is None:
        images = labels.parent / "images" if (labels.parent / "images").is_dir() else labels.parent
    images = _require_dir(Path(images), "image folder")
    rows = _read_table(labels)
    if not rows:
        raise DatasetError(f"{labels.name}: no rows")
    columns = next(((i, g) for i, g in GRADE_COLUMNS if i in rows[0] and g in rows[0]), None)
    if columns is None:
        known = "; ".join(f"{i},{g}" for i, g in GRADE_COLUMNS)
        raise DatasetError(f"{labels.name}: columns {sorted(rows[0])} are not a known grading form ({known})")
    id_column, grade_column = columns
    index: dict[str, Path] = {}
    for p in sorted(images.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            index.setdefault(p.name.lower(), p)
            index.setdefault(p.stem.lower(), p)
    source = source or labels.parent.name.lower()
    report, samples, seen = LabelReport(path=labels, rows=len(rows)), [], set()
    for row in rows:
        image_id, grade_text = row.get(id_column, ""), row.get(grade_column, "")
        if image_id in seen:
            report.duplicates.append(image_id)
            continue
        seen.add(image_id)
        path = index.get(image_id.lower())
        if path is None:
            report.missing_files.append(image_id)
            continue
        try:
            grade = int(float(grade_text))
            if grade not in GRADES or float(grade_text) != grade:
                raise ValueError
        except (ValueError, OverflowError):  # OverflowError: "inf"
            report.bad_grades.append(f"{image_id}={grade_text!r}")
            continue
        samples.append(Sample(image=path, id=f"{source}-{path.stem}", source=source, grade=grade, laterality=_laterality(path.stem)))
    if strict and not report.ok:
        raise DatasetError(report.summary())
    return samples, report


LABEL_FILE_NAMES = ("labels.csv", "trainlabels.csv", "train.csv", "annotation.csv", "grades.csv")


def read_folder(root: str | Path, source: str | None = None) -> list[Sample]:
    """Plain folder of photos, optionally sorted into grade sub-folders 0/ .. 4/."""
    root = _require_dir(Path(root), "image folder")
    source = source or root.name.lower()
    grade_dirs = [root / str(g) for g in GRADES if (root / str(g)).is_dir()]
    if grade_dirs:
        samples = [
            Sample(image=p, id=f"{source}-{p.stem}", source=source, grade=int(d.name), laterality=_laterality(p.stem))
            for d in grade_dirs
            for p in _images_in(d)
        ]
    else:
        photos = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        samples = [Sample(image=p, id=f"{source}-{p.stem}", source=source, laterality=_laterality(p.stem)) for p in photos]
    if not samples:
        raise DatasetError(f"{root}: no images found")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise DatasetError(f"{root}: several files share the id(s) {', '.join(dupes[:5])}")
    return samples


def read_dataset(path: str | Path, strict: bool = True) -> list[Sample]:
    """Guess the layout of path and read it (DRIVE, STARE, CHASE_DB1, HRF, graded CSV/XLS, folder)."""
    path = Path(path)
    if path.is_file():
        return read_graded(path, strict=strict)[0]
    root = _require_dir(path, "dataset")
    if (root / "images").is_dir() and (root / "1st_manual").is_dir():  # one DRIVE split
        return read_drive(root.parent, root.name)
    if (root / "training" / "images").is_dir() or (root / "test" / "images").is_dir():
        return [s for split in ("training", "test") if (root / split / "images").is_dir() for s in read_drive(root, split)]
    if (root / "manual1").is_dir() and (root / "images").is_dir():
        return read_hrf(root)
    names = {p.name.lower(): p for p in root.iterdir() if p.is_file()}
    label_file = next((names[n] for n in LABEL_FILE_NAMES if n in names), None)
    if label_file is None:
        label_file = next((p for n, p in sorted(names.items()) if n.endswith((".csv", ".xls"))), None)
    if label_file is not None:
        return read_graded(label_file, source=root.name.lower(), strict=strict)[0]
    if any(re.fullmatch(r"image_\d+[lr]\.(jpg|png|tif)", n) for n in names):
        return read_chase(root)
    if any(re.fullmatch(r"im\d+\.ppm", p.name.lower()) for p in root.rglob("*.ppm")):
        return read_stare(root)
    return read_folder(root)
