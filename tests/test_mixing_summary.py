"""scripts/collect_mixing_summary.py (every way of adding synthetic pairs to DRIVE's 20, against its
real-alone control, gathered from docs/results) and make_figures.py's forest plot of it."""
import json
import pytest
from PIL import Image

from conftest import ROOT
from conftest import load_script as load


@pytest.fixture(scope="module")
def summary():
    return load("collect_mixing_summary").collect()


def test_the_stored_summary_is_what_the_results_files_give(summary):
    stored = json.loads((ROOT / "docs" / "results" / "mixing-summary.json").read_text())
    assert stored == json.loads(json.dumps(summary))  # rerun the script after changing a results file


def test_each_row_is_its_seeds_differences_against_its_own_control(summary):
    assert len(summary["rows"]) >= 40
    for r in summary["rows"]:
        assert r["group"] in summary["groups"] and r["measure"] in ("dice_chosen", "dice_05")
        for source in (r["source"], r["control_source"]):
            assert (ROOT / source.split(":")[0]).is_file(), source
        control = dict(zip(r.get("control_seeds", r["seeds"]), r["control"]))
        mix = dict(zip(r["seeds"], r["mix"]))
        assert r["paired_seeds"] == [s for s in r["seeds"] if s in control]
        expected = [mix[s] - control[s] for s in r["paired_seeds"]]
        assert r["paired_diff"] == pytest.approx(expected, abs=1e-5)
        assert r["mean_diff"] == pytest.approx(sum(expected) / len(expected), abs=1e-5)
        assert all(0.3 < v < 0.9 for v in r["mix"] + r["control"])  # Dice values, not percentages or AUCs


def test_forest_figure_draws_a_row_for_each_approach(summary, tmp_path):
    figures = load("make_figures")
    few = dict(summary, rows=summary["rows"][:3])
    for name, data in (("all", summary), ("few", few)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        figures.forest_figure(str(tmp_path / f"{name}.json"), str(tmp_path / f"{name}.png"))
    tall, short = Image.open(tmp_path / "all.png"), Image.open(tmp_path / "few.png")
    assert tall.height > short.height + 19 * (len(summary["rows"]) - 3)
    assert tall.getextrema() != ((255, 255),) * 3  # something drawn
