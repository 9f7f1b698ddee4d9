"""Print the results tables of README.md and MODEL_CARD.md from the shipped metrics.json files.

python scripts/results_table.py            # markdown, for pasting
python scripts/results_table.py --spread runs/cnn-model2-seed0 space/checkpoints/cnn-model2 runs/cnn-model2-seed2
                                            # one recipe's runs (seeds): each, then mean, SD and range
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"custom-cnn": "CustomCNN", "cnn-model2": "CnnModel2"}


def pct(x: float, n: int | None = None) -> str:
    """An accuracy; with `n`, its 95% interval too, as README and MODEL_CARD print it."""
    if n is None:
        return f"{100 * x:.2f}%"
    from fer_hub.training.evaluate import accuracy_with_interval

    return accuracy_with_interval(x, n)


def how_made(m: dict) -> str:
    """The epochs and training cells of a run, or what a weight soup averaged."""
    if soup := m.get("soup"):
        kept = sum(i["kept"] for i in soup["ingredients"])
        return f"weight soup of {kept} of {len(soup['ingredients'])} fine-tunes | -"
    return f"{m['epochs_run']} ({m['best_epoch']}) | {m['train_seconds'] / 3600:.2f} h"


def default_scoring(m: dict) -> str:
    """The metrics.json key of the accuracy the Predictor gives by default (its calibration's
    choice of flip TTA; a folder never calibrated is scored plain)."""
    return "accuracy_tta" if m.get("calibration", {}).get("tta") else "accuracy"


SPREAD_COLUMNS = (  # (heading, split, value of that split's metrics)
    ("validation, plain", "validation", lambda s, m: s["accuracy"]),
    ("validation, default", "validation", lambda s, m: s[default_scoring(m)]),
    ("test, plain", "test", lambda s, m: s["accuracy"]),
    ("test, default", "test", lambda s, m: s[default_scoring(m)]),
)


def spread(folders: list[str]) -> None:
    """One row per run of a recipe (seeds), then the mean, the sample standard deviation and
    the range of each accuracy: how far apart two runs of the same recipe land by chance."""
    runs = {f: json.loads((Path(f) / "metrics.json").read_text()) for f in folders}
    cells = {
        f: [fn(m[split], m) if split in m else None for _, split, fn in SPREAD_COLUMNS]
        for f, m in runs.items()
    }
    print("| run | " + " | ".join(h for h, _, _ in SPREAD_COLUMNS) + " |")
    print("|---|" + "---|" * len(SPREAD_COLUMNS))
    for f, values in cells.items():
        print(f"| {f} | " + " | ".join("-" if v is None else pct(v) for v in values) + " |")
    for name, stat in (
        ("mean", statistics.mean),
        ("SD (points)", lambda v: statistics.stdev(v) if len(v) > 1 else None),
        ("range (points)", lambda v: max(v) - min(v)),
    ):
        row = []
        for i in range(len(SPREAD_COLUMNS)):
            values = [c[i] for c in cells.values() if c[i] is not None]
            value = stat(values) if values else None
            row.append("-" if value is None else f"{100 * value:.2f}" + ("%" if name == "mean" else ""))
        print(f"| {name}, {len(cells)} runs | " + " | ".join(row) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spread", nargs="+", metavar="FOLDER", help="runs of one recipe: their spread instead")
    args = ap.parse_args()
    if args.spread:
        return spread(args.spread)
    shipped = {n: ROOT / "space" / "checkpoints" / n / "metrics.json" for n in NAMES}
    rows = {n: json.loads(p.read_text()) for n, p in shipped.items() if p.is_file()}
    print(
        "| model | split | accuracy | accuracy (flip TTA) | macro-F1 | epochs (best) | training | hardware |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, m in rows.items():
        for split in ("validation", "test"):
            s = m[split]
            print(
                f"| {NAMES[n]} | {split} | {pct(s['accuracy'], s['n'])} | {pct(s['accuracy_tta'], s['n'])} | {s['macro_f1']:.4f} | "
                f"{how_made(m)} | {m['hardware']} |"
            )
    print('\nThe float weights (backend="onnx" or "torch"; the browser\'s photos), same calibration:\n')
    print("| model | split | accuracy | accuracy (flip TTA) | macro-F1 (flip TTA) |")
    print("|---|---|---|---|---|")
    for n, m in rows.items():
        for split, s in m.get("float32_weights", {}).items():
            k = m[split]["n"]
            print(
                f"| {NAMES[n]} | {split} | {pct(s['accuracy'], k)} | {pct(s['accuracy_tta'], k)} | "
                f"{s['macro_f1_tta']:.4f} |"
            )
    print("\nPer-class F1 on test:\n")
    classes = list(next(iter(rows.values()))["test"]["per_class"]) if rows else []
    print("| model | " + " | ".join(classes) + " |")
    print("|---|" + "---|" * len(classes))
    for n, m in rows.items():
        print(
            f"| {NAMES[n]} | " + " | ".join(f"{m['test']['per_class'][c]['f1']:.3f}" for c in classes) + " |"
        )
    print("\nCalibration on test (temperature and class bias fitted on validation):\n")
    print(
        "| model | temperature | class bias | ECE before -> after | NLL before -> after | uncertain below | sharpness range "
        "(test faces outside) | test coverage (accuracy of kept) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, m in rows.items():
        c = m.get("calibration")
        if not c:
            print(f"| {NAMES[n]} | not calibrated | | | | | | |")
            continue
        t = c["test"]
        kept = f"{t['accuracy_kept']:.1%}" if t["accuracy_kept"] is not None else "-"
        bounds = c.get("sharpness_range")
        odd = "-" if bounds is None else f"{bounds[0]:.2f} to {bounds[1]:.2f} ({t['unfamiliar']:.1%})"
        bias = c.get("class_bias")
        bias = "none" if not bias else ", ".join(f"{k} {v:+.2f}" for k, v in bias.items())
        print(
            f"| {NAMES[n]} | {c['temperature']:.3f} | {bias} | {t['ece_before']:.4f} -> {t['ece_after']:.4f} | "
            f"{t['nll_before']:.4f} -> {t['nll_after']:.4f} | {c['uncertain_below']:.3f} | {odd} | "
            f"{t['coverage']:.1%} ({kept}) |"
        )


if __name__ == "__main__":
    main()
