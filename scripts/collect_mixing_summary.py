"""Gather every way of adding synthetic pairs to DRIVE's 20 real ones (train on synthetic, test on
real) into one file: per approach the mix's per-seed Dice on DRIVE test and that of its real-alone
control (same script, steps and width), and the difference mix - control.

python scripts/collect_mixing_summary.py [OUTPUT]   (default docs/results/mixing-summary.json)

Reads only docs/results/*.json (nothing is measured here); the picture:
python scripts/make_figures.py forest docs/results/mixing-summary.json
"""
import json
import sys
from pathlib import Path
from statistics import fmean as mean

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def pick(runs: list[dict], key: str, **match) -> tuple[list[int], list[float]]:
    """Seeds and KEY of the runs whose fields equal MATCH (a missing field counts as None), by seed."""
    chosen = sorted((r for r in runs if all(r.get(k) == v for k, v in match.items())), key=lambda r: r["seed"])
    if not chosen:
        raise SystemExit(f"no run matches {match}")
    return [r["seed"] for r in chosen], [r[key] for r in chosen]


def condition(runs: list[dict], name: str) -> tuple[list[int], list[float]]:
    """Seeds and Dice of `evaluate synthetic`'s runs of one condition (its "runs" list)."""
    return pick(runs, "dice", condition=name)


def summary(block: dict, key: str) -> tuple[list[int], list[float]]:
    """Seeds and KEY of a {"seeds": [...], KEY: [...]} summary block."""
    return list(block["seeds"]), list(block[key])


def row(label: str, group: str, measure: str, mix: tuple[list[int], list[float]], control: tuple[list[int], list[float]],
        source: str, control_source: str, note: str | None = None) -> dict:
    (seeds, values), (control_seeds, control_values) = mix, control
    assert len(label) <= 60, label
    out = {"label": label, "group": group, "measure": measure, "mix": values, "control": control_values, "seeds": seeds}
    if control_seeds != seeds:
        out["control_seeds"] = control_seeds
    shared = [s for s in seeds if s in control_seeds]
    if shared:
        by_seed = dict(zip(control_seeds, control_values))
        out["paired_diff"] = [round(v - by_seed[s], 5) for s, v in zip(seeds, values) if s in by_seed]
        out["paired_seeds"] = shared
        out["mean_diff"] = round(mean(out["paired_diff"]), 5)
    else:
        out["mean_diff"] = round(mean(values) - mean(control_values), 5)
    out["diff_of_means"] = round(mean(values) - mean(control_values), 5)
    out["source"] = source
    out["control_source"] = control_source
    if note:
        out["note"] = note
    return out


MIXED, BN, LABELS, ON_TOP, SEQUENCE, LONGER, DANN = (
    "mixed in the batch", "BatchNorm per domain", "labels masked or softened", "added on top",
    "in sequence (pre-train, then real)", "longer / wider", "domain-adversarial")
GROUPS = [MIXED, BN, LABELS, ON_TOP, SEQUENCE, LONGER, DANN]


def collect() -> dict:
    rows = []
    skipped = []
    d05, chosen = "dice_05", "dice_chosen"

    # --- `python -m retinagan evaluate synthetic`: the mixed / augmented conditions (Dice at 0.5) ---
    tos = load("train-on-synthetic.json")["runs"]
    rows.append(row("all pairs once, H200 pix2pix photos (old trees)", MIXED, d05, condition(tos, "mixed"), condition(tos, "real"),
                    "docs/results/train-on-synthetic.json: runs[condition=mixed]",
                    "docs/results/train-on-synthetic.json: runs[condition=real]"))
    ft = load("train-on-synthetic-finetuned-translator.json")["runs"]
    rows.append(row("all pairs once, fine-tuned pix2pix photos (old trees)", MIXED, d05, condition(ft, "mixed"), condition(ft, "real"),
                    "docs/results/train-on-synthetic-finetuned-translator.json: runs[condition=mixed]",
                    "docs/results/train-on-synthetic-finetuned-translator.json: runs[condition=real]"))
    grade = load("train-on-synthetic-pix2pix-grade-real-share-0.5.json")["runs"]
    rows.append(row("real 10x (half the draws), pix2pix-grade (old trees)", MIXED, d05, condition(grade, "mixed"), condition(grade, "real"),
                    "docs/results/train-on-synthetic-pix2pix-grade-real-share-0.5.json: runs[condition=mixed]",
                    "docs/results/train-on-synthetic-pix2pix-grade-real-share-0.5.json: runs[condition=real]"))
    pretrained = load("train-on-synthetic-pretrained.json")["runs"]
    real_1thread = condition(pretrained, "real")
    real_1thread_source = "docs/results/train-on-synthetic-pretrained.json: runs[condition=real] (README: real 0.773 +- 0.002, one thread)"
    rows.append(row("real 10x, textured pix2pix-grade (old trees)", MIXED, d05,
                    condition(load("train-on-synthetic-textured.json")["runs"], "mixed"), real_1thread,
                    "docs/results/train-on-synthetic-textured.json: runs[condition=mixed]", real_1thread_source))
    rows.append(row("real 10x, shipped pair (new trees, 3-scale)", MIXED, d05,
                    condition(load("train-on-synthetic-3scale.json")["runs"], "mixed"), real_1thread,
                    "docs/results/train-on-synthetic-3scale.json: runs[condition=mixed]", real_1thread_source))
    fine = load("fine-vessels-2026-11-26.json")["train_on_synthetic"]
    rows.append(row("real 10x, fine-vessel trees", MIXED, d05, condition(fine["syn-fine-mixed"]["runs"], "mixed"),
                    condition(fine["syn-real"]["runs"], "real"),
                    "docs/results/fine-vessels-2026-11-26.json: train_on_synthetic.syn-fine-mixed.runs",
                    "docs/results/fine-vessels-2026-11-26.json: train_on_synthetic.syn-real.runs (real, rerun beside them)"))
    diagnostics = load("train-on-synthetic-diagnostics.json")["conditions"]
    rows.append(row("real 10x + translated DRIVE trees (augmented)", MIXED, d05, condition(diagnostics["augmented"]["runs"], "augmented"),
                    real_1thread, "docs/results/train-on-synthetic-diagnostics.json: conditions.augmented.runs", real_1thread_source))

    # --- scripts/mixing_batchnorm.py, 1,200 steps, 8 real + 8 other patches; Dice at 0.5 only ---
    bn = load("mixing-batchnorm-2026-11-27.json")["runs"]
    bn_real = pick(bn, "dice", pairs="synthetic", mode="shared", real_share=1.0)
    bn_real_source = "docs/results/mixing-batchnorm-2026-11-27.json: runs[mode=shared, real_share=1.0]"
    for pairs, mode, group, label in (("synthetic", "shared", MIXED, "one BatchNorm, 8 + 8, fine-vessel synthetic (pix2pix-grade)"),
                                      ("translated", "shared", MIXED, "one BatchNorm, 8 + 8, translated DRIVE trees"),
                                      ("synthetic", "domain", BN, "BN per domain, 8 + 8, fine-vessel synthetic (pix2pix-grade)"),
                                      ("translated", "domain", BN, "BatchNorm per domain, 8 + 8, translated DRIVE trees")):
        rows.append(row(label, group, d05, pick(bn, "dice", pairs=pairs, mode=mode, real_share=0.5), bn_real,
                        f"docs/results/mixing-batchnorm-2026-11-27.json: runs[pairs={pairs}, mode={mode}, real_share=0.5]",
                        bn_real_source))

    # --- the same script, the DRIVE-camera translator; Dice at the threshold chosen on DRIVE training ---
    camera = load("drive-camera-translator-2026-11-27.json")["conditions"]
    xeon_real = summary(camera["synthetic-shared-share1.0-batch16"], "dice_chosen")
    xeon_real_source = ("docs/results/drive-camera-translator-2026-11-27.json: conditions.synthetic-shared-share1.0-batch16.dice_chosen "
                        "(the same segmenters in docs/results/mixing-ceiling-2026-11-28.json: segmenters.*share1.0*.test_vs_first_at_chosen)")
    for key, group, label in (("synthetic-tr-drive-600-shared-share0.5-batch16", MIXED, "one BatchNorm, 8 + 8, DRIVE-camera translator"),
                              ("synthetic-tr-drive-1500-shared-share0.5-batch16", MIXED, "one BatchNorm, 8 + 8, DRIVE-camera translator (1,500)"),
                              ("synthetic-tr-drive-600-domain-share0.5-batch16", BN, "BatchNorm per domain, 8 + 8, DRIVE-camera translator"),
                              ("synthetic-tr-drive-600-domain-share0.75-batch16", BN, "BatchNorm per domain, 12 + 4, DRIVE-camera translator"),
                              ("synthetic-tr-drive-600-domain-share0.875-batch16", BN, "BatchNorm per domain, 14 + 2, DRIVE-camera translator")):
        rows.append(row(label, group, chosen, summary(camera[key], "dice_chosen"), xeon_real,
                        f"docs/results/drive-camera-translator-2026-11-27.json: conditions.{key}.dice_chosen", xeon_real_source))

    more = load("mixing-and-binarisation-2026-11-27.json")["mixing"]["runs"]
    more_source = "docs/results/mixing-and-binarisation-2026-11-27.json: mixing.runs"
    rows.append(row("BatchNorm per domain, 12 + 4, translated DRIVE trees", BN, chosen,
                    pick(more, chosen, pairs="translated", real_share=0.75, steps=1200), xeon_real,
                    f"{more_source}[pairs=translated]", xeon_real_source))
    rows.append(row("BN per domain, 8 + 8, pix2pix-grade in DRIVE's looks", BN, chosen,
                    pick(more, chosen, translator="checkpoints/pix2pix-grade", real_share=0.5, drive_looks=True), xeon_real,
                    f"{more_source}[translator=pix2pix-grade, drive_looks]", xeon_real_source))
    rows.append(row("BN per domain, 12 + 4, DRIVE camera + DRIVE's looks (best)", BN, chosen,
                    pick(more, chosen, translator="runs/tr-drive-600/checkpoint", real_share=0.75, drive_looks=True, real_tail=0,
                         steps=1200), xeon_real,
                    f"{more_source}[translator=tr-drive-600, drive_looks, real_share=0.75]", xeon_real_source))
    masks = load("mixing-label-masks-2026-11-27.json")["mixing"]["runs"]
    masks_source = "docs/results/mixing-label-masks-2026-11-27.json: mixing.runs"
    rows.append(row("BN per domain, 12 + 4, pix2pix-grade in DRIVE's looks", BN, chosen,
                    pick(masks, chosen, translator="checkpoints/pix2pix-grade", real_share=0.75), xeon_real,
                    f"{masks_source}[translator=pix2pix-grade]", xeon_real_source))
    curve = load("mixing-learning-curve-2026-12-06.json")
    k20 = load("mixing-learning-curve-2026-12-07.json")["learning_curve"]["rows"]["20"]  # session 29's seeds and session 35's
    rows.append(row("BN per domain, 12 + 4, pix2pix-grade, DRIVE looks (AMD)", BN, chosen,
                    (k20["mixed_seeds"], k20["mixed"]), (k20["real_seeds"], k20["real"]),
                    "docs/results/mixing-learning-curve-2026-12-07.json: learning_curve.rows.20.mixed",
                    "docs/results/mixing-learning-curve-2026-12-07.json: learning_curve.rows.20.real",
                    "K = 20 row of the learning curve; 5 paired seeds"))

    # --- labels masked, synthetic inputs softened or redrawn (12 + 4, DRIVE camera, DRIVE's looks) ---
    for match, label, where in (({"edge_band": "outer"}, "labels not counted on the 1-px ring outside vessels", "edge_band=outer"),
                                ({"edge_band": "both"}, "labels not counted on rings outside and inside", "edge_band=both"),
                                ({"agreement": True}, "labels not counted where the segmenter disagrees", "agreement=true"),
                                ({"background_doubt": 0.15}, "background not counted where segmenter >= 0.15", "background_doubt=0.15")):
        rows.append(row(label, LABELS, chosen, pick(masks, chosen, translator="runs/tr-drive-600/checkpoint", real_share=0.75, **match),
                        xeon_real, f"{masks_source}[{where}]", xeon_real_source))
    soft = load("mixing-softened-synthetic-2026-11-27.json")["runs"]
    rows.append(row("synthetic inputs blurred 0.7 px + fresh grain 0.15", LABELS, chosen, pick(soft, chosen, grain=0.15), xeon_real,
                    "docs/results/mixing-softened-synthetic-2026-11-27.json: runs[soften=0.7, grain=0.15]", xeon_real_source))
    rows.append(row("synthetic inputs blurred 0.7 px", LABELS, chosen, pick(soft, chosen, grain=0.0), xeon_real,
                    "docs/results/mixing-softened-synthetic-2026-11-27.json: runs[soften=0.7, grain=0.0]", xeon_real_source))
    detail = load("photodetail-2026-11-28.json")["mixing_batchnorm_synthetic_plus_real"]
    rows.append(row("synthetic trees redrawn by the detailer", LABELS, chosen, pick(detail["trees_detail"], chosen), xeon_real,
                    "docs/results/photodetail-2026-11-28.json: mixing_batchnorm_synthetic_plus_real.trees_detail", xeon_real_source))
    rows.append(row("synthetic photos' detail redrawn by the photo detailer", LABELS, chosen, pick(detail["photo_detail"], chosen),
                    xeon_real, "docs/results/photodetail-2026-11-28.json: mixing_batchnorm_synthetic_plus_real.photo_detail",
                    xeon_real_source))

    # --- synthetic patches added on top of the control's 16 real ones ---
    rows.append(row("4 added on top, w 0.25 (Xeon)", ON_TOP, chosen, pick(masks, chosen, added=4), xeon_real,
                    f"{masks_source}[added=4, added_weight=0.25]", xeon_real_source))
    longer = load("mixing-longer-training-2026-12-06.json")
    amd_real = summary(longer["real_1200"], "dice_chosen")
    amd_real_source = "docs/results/mixing-longer-training-2026-12-06.json: real_1200.dice_chosen (5 seeds, AMD)"
    rows.append(row("4 added on top, w 0.5, own stream, 1,200 steps", ON_TOP, chosen, summary(longer["added_1200"], "dice_chosen"),
                    amd_real, "docs/results/mixing-longer-training-2026-12-06.json: added_1200.dice_chosen", amd_real_source))
    rows.append(row("4 added on top, w 0.5, PCGrad", ON_TOP, chosen, summary(curve["added_on_top_paired"]["pcgrad"], "dice_chosen"),
                    amd_real, "docs/results/mixing-learning-curve-2026-12-06.json: added_on_top_paired.pcgrad.dice_chosen",
                    amd_real_source))
    rows.append(row("4 added on top, w 1.0, output layer per domain", ON_TOP, chosen,
                    summary(longer["head_domain_1200"], "dice_chosen"), amd_real,
                    "docs/results/mixing-longer-training-2026-12-06.json: head_domain_1200.dice_chosen", amd_real_source))

    # --- in sequence: pre-trained on synthetic (1,200 steps), fine-tuned 1,200 on the real pairs; control real at 2,400 ---
    real_2400 = pick(diagnostics["real_2400_steps"]["runs"], "dice")
    real_2400_source = "docs/results/train-on-synthetic-diagnostics.json: conditions.real_2400_steps.runs (real, 2,400 steps)"
    rows.append(row("pre-trained on pix2pix-grade synthetic (old trees)", SEQUENCE, d05, condition(pretrained, "pretrained"), real_2400,
                    "docs/results/train-on-synthetic-pretrained.json: runs[condition=pretrained]", real_2400_source))
    rows.append(row("pre-trained on the shipped pair's synthetic", SEQUENCE, d05, pick(diagnostics["pretrained"]["runs"], "dice"), real_2400,
                    "docs/results/train-on-synthetic-diagnostics.json: conditions.pretrained.runs", real_2400_source))
    rows.append(row("pre-trained on translated DRIVE trees", SEQUENCE, d05, pick(diagnostics["pretrained_from_translated"]["runs"], "dice"),
                    real_2400, "docs/results/train-on-synthetic-diagnostics.json: conditions.pretrained_from_translated.runs",
                    real_2400_source))
    rows.append(row("pre-trained on fine-vessel synthetic", SEQUENCE, d05, pick(fine["pretrained_from_fine_synthetic"]["runs"], "dice"),
                    real_2400, "docs/results/fine-vessels-2026-11-26.json: train_on_synthetic.pretrained_from_fine_synthetic.runs",
                    real_2400_source))
    rows.append(row("12 + 4 mix, then the last 300 of 1,200 steps real only", SEQUENCE, chosen,
                    pick(more, chosen, pairs="synthetic", real_tail=300), xeon_real, f"{more_source}[real_tail=300]", xeon_real_source,
                    "one run of 1,200 steps (mixed, then real only), so its control is real at 1,200 steps"))

    # --- longer training, a wider segmenter ---
    rows.append(row("real 10x, fine-vessel trees, 2,400 steps", LONGER, d05, condition(fine["syn-fine-mixed-2400"]["runs"], "mixed"),
                    real_2400, "docs/results/fine-vessels-2026-11-26.json: train_on_synthetic.syn-fine-mixed-2400.runs", real_2400_source))
    rows.append(row("BN per domain, 12 + 4, DRIVE camera, 2,400 steps", LONGER, chosen,
                    pick(more, chosen, real_share=0.75, steps=2400), pick(more, chosen, real_share=1.0, steps=2400),
                    f"{more_source}[real_share=0.75, steps=2400]", f"{more_source}[real_share=1.0, steps=2400]"))
    for steps in ("2400", "4800", "9600"):
        if f"added_{steps}" in longer:
            rows.append(row(f"4 added on top, w 0.5, {int(steps):,} steps", LONGER, chosen, summary(longer[f"added_{steps}"], "dice_chosen"),
                            summary(longer[f"real_{steps}"], "dice_chosen"),
                            f"docs/results/mixing-longer-training-2026-12-06.json: added_{steps}.dice_chosen",
                            f"docs/results/mixing-longer-training-2026-12-06.json: real_{steps}.dice_chosen"))
    more_synthetic = load("mixing-more-synthetic-2026-12-07.json")
    rows.append(row("4 on top from 1,000 synthetic pairs, 4,800 steps", LONGER, chosen,
                    summary(more_synthetic["added_4800_syn1000"], "dice_chosen"), summary(longer["real_4800"], "dice_chosen"),
                    "docs/results/mixing-more-synthetic-2026-12-07.json: added_4800_syn1000.dice_chosen",
                    "docs/results/mixing-longer-training-2026-12-06.json: real_4800.dice_chosen"))
    faithful = load("mixing-faithful-pairs-2026-12-07.json")
    rows.append(row("best 200 of 1,000 pairs by fidelity, on top, 2,400 steps", LABELS, chosen,
                    summary(faithful["faithful_2400"], "dice_chosen"), summary(longer["real_2400"], "dice_chosen"),
                    "docs/results/mixing-faithful-pairs-2026-12-07.json: faithful_2400.dice_chosen",
                    "docs/results/mixing-longer-training-2026-12-06.json: real_2400.dice_chosen"))
    wide = load("mixing-ceiling-2026-11-28.json")
    rows.append(row("width 32, BN per domain, 12 + 4, DRIVE camera + looks", LONGER, chosen,
                    pick(wide["wider_segmenter_width32"]["real_plus_synthetic"], chosen),
                    pick(wide["wider_segmenter_width32"]["real_only"], chosen),
                    "docs/results/mixing-ceiling-2026-11-28.json: wider_segmenter_width32.real_plus_synthetic",
                    "docs/results/mixing-ceiling-2026-11-28.json: wider_segmenter_width32.real_only (width 32)"))

    # --- domain-adversarial critic on the best mix ---
    dann = wide["domain_adversarial_width16"]["runs"]
    for weight in (0.3, 0.05):
        rows.append(row(f"best mix + domain-adversarial critic, weight {weight}", DANN, chosen, pick(dann, chosen, dann=weight), xeon_real,
                        f"docs/results/mixing-ceiling-2026-11-28.json: domain_adversarial_width16.runs[dann={weight}]", xeon_real_source))

    skipped.append({"what": "exploratory mixes before the grid notch (modes dsbn and split: 8 + 8, 12 + 4, 16 + 16 patches)",
                    "source": "docs/results/mixing-batchnorm-2026-11-27.json: exploratory_before_the_notch",
                    "reason": "raw photos and an earlier copy of the script, with no real-alone run of that script and batch"})
    skipped.append({"what": "AdaBN: a mixed segmenter's BatchNorm re-estimated on the real photos (seed 0: 0.677 -> 0.752)",
                    "source": "README text only (Why mixing costs)",
                    "reason": "one seed, a post-hoc change to a trained segmenter, README text with no control of the same treatment "
                              "(it lowered real alone too, 0.775 -> 0.762); no JSON"})
    skipped.append({"what": "K = 1, 2, 5, 10 rows of the learning curve",
                    "source": "docs/results/mixing-learning-curve-2026-12-07.json: learning_curve.rows",
                    "reason": "fewer than DRIVE's 20 real pairs (only K = 20 rows here)"})
    skipped.append({"what": "synthetic-only and translated-only segmenters",
                    "source": "train-on-synthetic*.json, fine-vessels-2026-11-26.json and others",
                    "reason": "no real pairs in training (only mixes with all 20 real pairs here)"})

    order = {g: i for i, g in enumerate(GROUPS)}
    rows.sort(key=lambda r: order[r["group"]])  # stable: within a group, the order above
    return {
        "what": "every way this project tried of adding synthetic (vessel map, photo) pairs to DRIVE's 20 real training pairs when "
                "training the train-on-synthetic protocol's vessel segmenter (256-px scale, 64-px patches), against the "
                "real-alone run of the same script, steps and width; scored on DRIVE test (hand-drawn maps, inside the FOV)",
        "measure": "Dice on DRIVE test: dice_chosen = at the threshold chosen on DRIVE training (used wherever the source has it), "
                   "dice_05 = at 0.5 (the `evaluate synthetic` rows and the first per-domain BatchNorm runs have only this); "
                   "paired_diff = mix - control for each seed number both have; mean_diff = the mean of paired_diff (all rows "
                   "here are paired), diff_of_means = mean(mix) - mean(control) over all of each's seeds",
        "band": {"what": "real alone's seed spread: std across seeds of real alone at 2,400 steps (5 seeds, dice_chosen)",
                 "std": longer["real_2400"]["dice_chosen_std"],
                 "source": "docs/results/mixing-longer-training-2026-12-06.json: real_2400.dice_chosen_std"},
        "groups": GROUPS,
        "rows": rows,
        "skipped": skipped,
    }


if __name__ == "__main__":
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "mixing-summary.json"
    summary_ = collect()
    output.write_text(json.dumps(summary_, indent=1) + "\n")
    for r in summary_["rows"]:
        print(f"{r['group'][:12]:12} {r['label'][:60]:60} n={len(r['seeds'])} {r['measure']:11} {r['mean_diff']:+.4f}")
    print(output)
