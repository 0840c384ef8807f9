import numpy as np
import pytest

from retinagan.data.readers import read_chase, read_dataset, read_drive, read_folder, read_graded, read_hrf, read_stare
from retinagan.errors import DatasetError

from conftest import make_fundus, need_data, save


def photo(path):
    rgb, _ = make_fundus(64, 64)
    return save(path, rgb)


def test_drive_layout(drive_like):
    training = read_drive(drive_like, "training")
    assert [s.id for s in training] == ["drive-21_training", "drive-22_training", "drive-23_training"]
    assert all(s.vessels.is_file() and s.mask.is_file() for s in training)
    assert len(read_drive(drive_like, "test")) == 2
    assert len(read_dataset(drive_like)) == 5
    assert len(read_dataset(drive_like / "test")) == 2  # one split named directly
    with pytest.raises(DatasetError, match="folder"):
        read_drive(drive_like, "validation")


@pytest.mark.parametrize(
    "header,rows,names,grades",
    [
        ("image,level", ["10_left,0", "10_right,3"], ["10_left.jpeg", "10_right.jpeg"], [0, 3]),  # EyePACS
        ("id_code,diagnosis", ["000c1434d8d7,2", "001639a390f0,4"], ["000c1434d8d7.png", "001639a390f0.png"], [2, 4]),  # APTOS
        ("Image name,Retinopathy grade,Risk of macular edema ", ["IDRiD_001,3,2", "IDRiD_002,0,0"], ["IDRiD_001.jpg", "IDRiD_002.jpg"], [3, 0]),
        ("Image name,Ophthalmologic department,Retinopathy grade,Risk of macular edema ", ["a.tif,x,1,0", "b.tif,x,0,0"], ["a.tif", "b.tif"], [1, 0]),  # Messidor
    ],
)
def test_graded_csv_forms(tmp_path, header, rows, names, grades):
    for name in names:
        photo(tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    samples, report = read_graded(tmp_path / "labels.csv")
    assert report.ok and len(samples) == 2
    assert [s.grade for s in samples] == grades
    assert read_dataset(tmp_path)[0].image == samples[0].image


def test_eyepacs_laterality_from_names(tmp_path):
    photo(tmp_path / "images" / "7_left.jpeg")
    photo(tmp_path / "images" / "7_right.jpeg")
    (tmp_path / "labels.csv").write_text("image,level\n7_left,1\n7_right,1\n")
    samples, _ = read_graded(tmp_path / "labels.csv")
    assert [s.laterality for s in samples] == ["left", "right"]


def test_bad_csv_is_reported_not_crashed(tmp_path):
    photo(tmp_path / "images" / "a.png")
    photo(tmp_path / "images" / "b.png")
    photo(tmp_path / "images" / "c.png")
    (tmp_path / "labels.csv").write_text("image,level\na,0\nmissing,1\nb,7\nc,2\na,0\nc2,x\n")
    with pytest.raises(DatasetError) as info:
        read_graded(tmp_path / "labels.csv")
    message = str(info.value)
    assert "missing files (missing, c2)" in message
    assert "unknown grades (b='7')" in message
    assert "repeat an id (a)" in message
    samples, report = read_graded(tmp_path / "labels.csv", strict=False)
    assert [s.id.split("-")[-1] for s in samples] == ["a", "c"]
    assert not report.ok and report.rows == 6


def test_unknown_columns_and_unicode_names(tmp_path):
    photo(tmp_path / "images" / "œil_gauche.png")
    (tmp_path / "labels.csv").write_text("image,level\nœil_gauche,2\n", encoding="utf-8")
    samples, _ = read_graded(tmp_path / "labels.csv")
    assert samples[0].grade == 2
    (tmp_path / "other.csv").write_text("file,score\nx,1\n")
    with pytest.raises(DatasetError, match="not a known grading form"):
        read_graded(tmp_path / "other.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(DatasetError, match="UTF-8"):
        read_graded(tmp_path / "binary.csv")


def test_damaged_xls(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "Annotation_Base11.xls").write_bytes(b"not a spreadsheet")
    with pytest.raises(DatasetError, match="spreadsheet"):
        read_graded(tmp_path / "Annotation_Base11.xls")


def test_plain_folder_with_grade_subfolders(tmp_path):
    photo(tmp_path / "0" / "x.png")
    photo(tmp_path / "4" / "y.png")
    samples = read_folder(tmp_path)
    assert sorted((s.id.split("-")[-1], s.grade) for s in samples) == [("x", 0), ("y", 4)]
    flat = tmp_path / "flat"
    photo(flat / "p.jpg")
    assert read_dataset(flat)[0].grade is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        read_dataset(tmp_path / "empty")


def test_stare_chase_hrf_names(tmp_path):
    stare = tmp_path / "stare"
    photo(stare / "stare-images" / "im0001.ppm")
    save(stare / "labels-ah" / "im0001.ah.ppm", np.zeros((64, 64), np.uint8))
    save(stare / "labels-vk" / "im0001.vk.ppm", np.zeros((64, 64), np.uint8))
    assert read_stare(stare)[0].vessels.name == "im0001.ah.ppm"
    assert read_dataset(stare)[0].source == "stare"

    chase = tmp_path / "chase"
    photo(chase / "Image_01L.jpg")
    photo(chase / "Image_01R.jpg")
    save(chase / "Image_01L_1stHO.png", np.zeros((64, 64), np.uint8))
    samples = read_chase(chase)
    assert [s.laterality for s in samples] == ["left", "right"]
    assert samples[0].vessels is not None and samples[1].vessels is None
    assert read_dataset(chase)[0].source == "chase"

    hrf = tmp_path / "hrf"
    photo(hrf / "images" / "01_dr.JPG")
    save(hrf / "manual1" / "01_dr.tif", np.zeros((64, 64), np.uint8))
    save(hrf / "mask" / "01_dr_mask.tif", np.zeros((64, 64), np.uint8))
    sample = read_hrf(hrf)[0]
    assert sample.vessels.name == "01_dr.tif" and sample.extra["group"] == "diabetic retinopathy"
    assert read_dataset(hrf)[0].source == "hrf"


def test_shared_drive():
    root = need_data("drive")
    assert len(read_drive(root, "training")) == 20 and len(read_drive(root, "test")) == 20
    assert all(s.vessels and s.mask for s in read_drive(root, "test"))


def test_shared_eyepacs_and_idrid():
    samples = read_dataset(need_data("eyepacs"))
    grades = np.bincount([s.grade for s in samples], minlength=5)
    assert len(samples) == 100 and grades.tolist() == [44, 14, 14, 14, 14]
    assert all(s.laterality in ("left", "right") for s in samples)
    idrid = read_dataset(need_data("idrid"))
    assert len(idrid) == 54 and all(s.grade is None for s in idrid)
