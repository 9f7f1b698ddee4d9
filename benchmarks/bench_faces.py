"""Face detection on probe scenes: recall, false positives, box quality, end-to-end accuracy, speed.

    python benchmarks/bench_faces.py --dataset ../shared/fer2013
    python benchmarks/bench_faces.py --dataset ../shared/fer2013 --sweep     # + RetinaFace score sweep
    python benchmarks/bench_faces.py --big-only     # only the big photos (no FER-2013 needed)

Scenes (640x480 RGB, built here, seeded), pasted on face-free photos from scikit-image:
- portraits: colour head-and-shoulders squares of the two portraits that install with the
  dependencies (scikit-image's astronaut, matplotlib's Grace Hopper) and their mirror images, at
  three head sizes (200, 100, 56 px: faces about 110, 55 and 30 px wide), tilted 0, +-20 and
  +-30 degrees, and in dim light; and two- and three-person scenes of mixed sizes (near and far);
- FER faces, a harsher set: FER-2013 test faces (48x48 grayscale, blurry) upscaled (bicubic)
  inside a margin of their own mean gray (a head), same sizes, tilts and light, and two- and
  three-face scenes;
- the two example photos, and 20 face-free scenes (scikit-image's photos and textures, a cat
  among them).
Big photos (4000x3000, for the tiled pass; seeded): one colour portrait with a face 50, 55 or 60
px wide on a mosaic of the backgrounds above at their probe size (a photo's fine texture
everywhere, not one photo blown up); face-free mosaics and face-free photos enlarged to 4000x3000,
and two 4000x4000 mosaics, which take the most tiles there can be; and the two example photos
enlarged to 4000 px wide, ordinary photos whose face an early pass finds.
A face counts as found when a detection's centre lies inside its square and the detection's area
is 15-250% of the square's (a FER-2013 crop is tighter than a detector's box, which takes in the
forehead and chin); any other detection is a false positive. End-to-end accuracy
classifies each found FER face as the Predictor does (its crop path and the model) and compares
it with the model's accuracy on the same faces' original 48x48 crops. Stop any training run first: it shares the cores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from fer_hub.hardware import describe_cpu
from fer_hub.tracking import iou

ROOT = Path(__file__).resolve().parents[1]
W, H = 640, 480
BACKGROUNDS = [
    "grass",
    "brick",
    "gravel",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
]
FACE_FREE = [
    "coffee", "chelsea", "rocket", "moon", "page", "text", "horse", "clock", "hubble_deep_field",
    "immunohistochemistry", "grass", "gravel", "brick", "logo", "checkerboard", "colorwheel", "retina",
    "cell", "coins", "shepp_logan_phantom",
]  # fmt: skip


MULTI = ("2 portraits", "3 portraits", "2 FER faces", "3 FER faces")


@dataclass
class Scene:
    name: str
    condition: str
    image: Image.Image
    faces: list[tuple[tuple[float, float, float, float], int, np.ndarray]] = field(default_factory=list)
    # each face: (x, y, w, h) of its square, label, original 48x48 crop (None for photos)


def _photo(name: str) -> Image.Image:
    from skimage import data

    arr = getattr(data, name)()
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        arr = (255 * (arr - arr.min()) / max(arr.max() - arr.min(), 1e-9)).astype(np.uint8)
    im = Image.fromarray(arr)
    return im.convert("RGB").resize((W, H), Image.Resampling.BILINEAR)


def _paste(scene: Image.Image, face48: np.ndarray, size: int, x: int, y: int, tilt: float) -> tuple:
    """Paste a FER face, upscaled to `size`, centred at (x, y) inside a head-sized margin of its
    own mean gray (FER crops are tight: a detector needs the context a photo would have)."""
    pad = round(size * 0.3)
    face = Image.new("RGB", (size + 2 * pad, size + 2 * pad), (int(face48.mean()),) * 3)
    face.paste(
        Image.fromarray(face48).resize((size, size), Image.Resampling.BICUBIC).convert("RGB"), (pad, pad)
    )
    _place(scene, face, x, y, tilt)
    return (x - size / 2, y - size / 2, size, size)


def _place(scene: Image.Image, patch: Image.Image, x: int, y: int, tilt: float) -> None:
    """Paste `patch` centred at (x, y), rotated by `tilt` degrees (only the patch, not its corners)."""
    mask = Image.new("L", patch.size, 255)
    if tilt:
        patch = patch.rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True)
        mask = mask.rotate(tilt, expand=True)
    scene.paste(patch, (x - patch.width // 2, y - patch.height // 2), mask)


def portraits() -> list[Image.Image]:
    """Colour head-and-shoulders squares of the two portraits that install with the dependencies
    (scikit-image's astronaut, matplotlib's Grace Hopper) and their mirror images. Each square is
    1.84x the face's width, as a head in a photo is."""
    import matplotlib.cbook
    from skimage import data

    astronaut = Image.fromarray(data.astronaut()).crop((136, 26, 316, 206))
    hopper = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    hopper = hopper.convert("RGB").crop((104, 55, 428, 379))
    return [astronaut, hopper, ImageOps.mirror(astronaut), ImageOps.mirror(hopper)]


def _paste_photo(scene: Image.Image, head: Image.Image, size: int, x: int, y: int, tilt: float) -> tuple:
    """Paste a colour head square resized to `size`, centred at (x, y), tilted by `tilt` degrees."""
    _place(scene, head.resize((size, size), Image.Resampling.LANCZOS), x, y, tilt)
    return (x - size / 2, y - size / 2, size, size)


def build_scenes(data, n_faces: int, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    faces = data.x_test[:, 0].numpy()
    labels = data.y_test.numpy()
    pick = rng.choice(len(faces), n_faces, replace=False)
    scenes = []
    conditions = [(s, t) for s in (200, 100, 56) for t in (0, -20, 20, -30, 30)]
    for k, i in enumerate(pick):
        for size, tilt in conditions + [(100, "dim")]:
            bg = _photo(BACKGROUNDS[(k + len(scenes)) % len(BACKGROUNDS)])
            half = round(size * 0.8)  # half the padded patch
            cx, cy = int(rng.integers(half, W - half)), int(rng.integers(half, H - half))
            box = _paste(bg, faces[i], size, cx, cy, 0 if tilt == "dim" else tilt)
            if tilt == "dim":
                bg = ImageEnhance.Brightness(bg).enhance(0.35)
            cond = f"FER {size}px dim" if tilt == "dim" else f"FER {size}px tilt {tilt:+d}"
            scenes.append(Scene(f"fer{i}", cond, bg, [(box, int(labels[i]), faces[i])]))
    heads = portraits()
    rng = np.random.default_rng(seed + 1)  # the portrait scenes do not depend on --faces
    for size, tilt in conditions + [(100, "dim")]:  # colour portraits, as a photo shows a person
        for k in range(2 * len(heads)):
            bg = _photo(BACKGROUNDS[(k + len(scenes)) % len(BACKGROUNDS)])
            half = round(size * 0.75)
            cx, cy = int(rng.integers(half, W - half)), int(rng.integers(half, H - half))
            box = _paste_photo(bg, heads[k % len(heads)], size, cx, cy, 0 if tilt == "dim" else tilt)
            if tilt == "dim":
                bg = ImageEnhance.Brightness(bg).enhance(0.35)
            cond = f"portrait {size}px dim" if tilt == "dim" else f"portrait {size}px tilt {tilt:+d}"
            scenes.append(Scene(f"portrait{k % len(heads)}", cond, bg, [(box, -1, None)]))
    for n in (2, 3):  # several people, of different sizes (near and far), side by side
        for k in range(10):
            bg = _photo(BACKGROUNDS[k % len(BACKGROUNDS)])
            sizes = [int(v) for v in rng.choice([200, 140, 100, 70, 56], n, replace=n > 5)]
            spots = [(W * (j + 1) // (n + 1), H // 2 + int(rng.integers(-60, 60))) for j in range(n)]
            pick = rng.permutation(len(heads))[:n]
            boxes = [
                _paste_photo(bg, heads[h], min(sz, W // (n + 1)), x, y, 0)
                for h, sz, (x, y) in zip(pick, sizes, spots)
            ]
            scenes.append(Scene(f"people{k}", f"{n} portraits", bg, [(b, -1, None) for b in boxes]))
    for n in (2, 3):
        for k in range(10):
            bg = _photo(BACKGROUNDS[k % len(BACKGROUNDS)])
            idx = rng.choice(len(faces), n, replace=False)
            spots = [(W * (j + 1) // (n + 1), H // 2 + int(rng.integers(-60, 60))) for j in range(n)]
            boxes = [_paste(bg, faces[i], 120, x, y, 0) for i, (x, y) in zip(idx, spots)]
            scenes.append(
                Scene(
                    f"multi{k}",
                    f"{n} FER faces",
                    bg,
                    [(b, int(labels[i]), faces[i]) for b, i in zip(boxes, idx)],
                )
            )
    for name, boxes in (
        ("astronaut.jpg", [(176, 56, 98, 120)]),
        ("two_faces.jpg", [(176, 56, 98, 120), (750, 56, 98, 120)]),
    ):
        scenes.append(
            Scene(
                name,
                "example photo",
                Image.open(ROOT / "space" / "examples" / name).convert("RGB"),
                [(b, -1, None) for b in boxes],
            )
        )
    for name in FACE_FREE:
        scenes.append(Scene(name, "no face", _photo(name)))
    return scenes


def _match(det, gt) -> bool:
    x, y, w, h = det
    gx, gy, gw, gh = gt
    cx, cy = x + w / 2, y + h / 2
    return gx <= cx <= gx + gw and gy <= cy <= gy + gh and 0.15 <= (w * h) / (gw * gh) <= 2.5


def run(detector, scenes: list[Scene], predictor=None) -> dict:
    """Recall per condition, false positives, IoU of matches, end-to-end accuracy, ms."""
    per_cond: dict[str, list[int]] = {}
    fp_faces = fp_free = 0
    ious, times = [], []
    right_e2e = right_crop = n_e2e = 0
    all_found: dict[str, list[bool]] = {}
    for scene in scenes:
        t0 = time.perf_counter()
        found = detector(scene.image)
        times.append(time.perf_counter() - t0)
        boxes = [f.box.as_list() for f in found]
        # The Predictor's crops, one per detection in the same order (it runs the same detector).
        labelled = predictor is not None and any(crop is not None for _, _, crop in scene.faces)
        crops = predictor.find_faces(scene.image)[3] if labelled and found else []
        used = set()
        hits = []
        for gt, label, crop in scene.faces:
            j = next((j for j, b in enumerate(boxes) if j not in used and _match(b, gt)), None)
            hits.append(j is not None)
            if j is not None:
                used.add(j)
                ious.append(iou(boxes[j], gt))
                if crops and crop is not None:
                    p = predictor.classify([crops[j]]).argmax(-1).item()
                    q = predictor.classify([Image.fromarray(crop)]).argmax(-1).item()
                    right_e2e += p == label
                    right_crop += q == label
                    n_e2e += 1
        if scene.faces:
            per_cond.setdefault(scene.condition, []).extend(hits)
            fp_faces += len(boxes) - len(used)
            # every face of the scene covered by some detection (shared or not)
            all_found.setdefault(scene.condition, []).append(
                all(any(_match(b, gt) for b in boxes) for gt, _, _ in scene.faces)
            )
        else:
            fp_free += len(boxes)
    recall = {c: sum(v) / len(v) for c, v in per_cond.items()}
    fer = [h for c, v in per_cond.items() if c.startswith("FER ") for h in v]
    people = [h for c, v in per_cond.items() if c.startswith("portrait ") for h in v]
    return {
        "recall": recall,
        "recall_portraits": sum(people) / len(people),
        "recall_fer": sum(fer) / len(fer),
        "fp_face_scenes": fp_faces,
        "fp_free_scenes": fp_free,
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
        "ms_median": 1000 * float(np.median(times)),
        "ms_p95": 1000 * float(np.percentile(times, 95)),
        "acc_e2e": right_e2e / n_e2e if n_e2e else None,
        "acc_crop": right_crop / n_e2e if n_e2e else None,
        "n_e2e": n_e2e,
        "multi_all_found": {c: sum(all_found.get(c, [])) / max(len(all_found.get(c, [])), 1) for c in MULTI},
    }


class _CountSizes:
    """Wraps a RetinaFace net and records the longer side of every input it runs on."""

    def __init__(self, net) -> None:
        self.net, self.sizes = net, []

    def __call__(self, rgb: np.ndarray, score: float):
        self.sizes.append(max(rgb.shape[:2]))
        return self.net(rgb, score)

    def __getattr__(self, name):
        return getattr(self.net, name)


BIG_W, BIG_H = 4000, 3000
BIG_FACE_WIDTHS = (50, 55, 60)
HEAD_PER_FACE = 1.84  # a portrait square's side per face width (`portraits`)


def _mosaic(rng: np.random.Generator, width: int = BIG_W, height: int = BIG_H) -> Image.Image:
    """A face-free `width` x `height` scene: the background photos at their probe size, in a seeded
    order, half of them mirrored."""
    photos = {name: _photo(name) for name in BACKGROUNDS}
    scene = Image.new("RGB", (width, height))
    for y in range(0, height, H):
        for x in range(0, width, W):
            tile = photos[BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]]
            scene.paste(ImageOps.mirror(tile) if rng.random() < 0.5 else tile, (x, y))
    return scene


def big_scenes(seed: int = 0) -> Iterator[Scene]:
    """Big photos, one at a time (each holds 36-48 MB): a small face on a mosaic; face-free ones;
    the example photos enlarged."""
    rng = np.random.default_rng(seed)
    heads = portraits()
    for width in BIG_FACE_WIDTHS:
        for k in range(2 * len(heads)):
            scene = _mosaic(rng)
            size = round(width * HEAD_PER_FACE)
            cx, cy = int(rng.integers(size, BIG_W - size)), int(rng.integers(size, BIG_H - size))
            box = _paste_photo(scene, heads[k % len(heads)], size, cx, cy, 0)
            yield Scene(f"portrait{k % len(heads)}", f"{width} px face, 4000x3000", scene, [(box, -1, None)])
    for k in range(6):
        yield Scene(f"mosaic{k}", "no face, 4000x3000", _mosaic(rng))
    for name in FACE_FREE[:6]:
        yield Scene(
            name, "no face, 4000x3000", _photo(name).resize((BIG_W, BIG_H), Image.Resampling.BILINEAR)
        )
    for k in range(2):
        yield Scene(f"square{k}", "no face, 4000x4000", _mosaic(rng, BIG_W, BIG_W))
    for name, boxes in (
        ("astronaut.jpg", [(176, 56, 98, 120)]),
        ("two_faces.jpg", [(176, 56, 98, 120), (750, 56, 98, 120)]),
    ):
        photo = Image.open(ROOT / "space" / "examples" / name).convert("RGB")
        f = BIG_W / photo.width
        photo = photo.resize((BIG_W, round(photo.height * f)), Image.Resampling.BICUBIC)
        yield Scene(
            name, "example photo at 4000 px", photo, [(tuple(v * f for v in b), -1, None) for b in boxes]
        )


def big_photos() -> None:
    """Recall, false positives, time and detector calls on the big photos, with and without the
    tiled pass; then the tiled pass's own cost per megapixel and its cap."""
    from fer_hub.faces import WORK_SIZE, RetinaFaceDetector, shrink_array, tile_grid

    detectors = {"default": RetinaFaceDetector(), "no tiled pass": RetinaFaceDetector(tiled=False)}
    for det in detectors.values():
        det.net = _CountSizes(det.net)
    # (condition, detector) -> faces, hits, false positives, seconds, calls
    stats: dict[tuple[str, str], list] = {}
    # one face-free photo of each size, to time the tiled pass alone
    face_free: dict[tuple[int, int], np.ndarray] = {}
    n = 0
    for scene in big_scenes():
        n += 1
        if not scene.faces:
            face_free.setdefault(scene.image.size, np.asarray(scene.image))
        for name, det in detectors.items():
            det.net.sizes.clear()
            t0 = time.perf_counter()
            found = det(scene.image)
            seconds = time.perf_counter() - t0
            boxes = [f.box.as_list() for f in found]
            used = set()
            for gt, _, _ in scene.faces:
                j = next((j for j, b in enumerate(boxes) if j not in used and _match(b, gt)), None)
                if j is not None:
                    used.add(j)
            st = stats.setdefault((scene.condition, name), [0, 0, 0, [], []])
            st[0] += len(scene.faces)
            st[1] += len(used)
            st[2] += len(boxes) - len(used)
            st[3].append(seconds)
            st[4].append(len(det.net.sizes))
    conditions = list(dict.fromkeys(c for c, _ in stats))
    print(
        f"\nbig photos: {n} scenes (per condition: recall or false positives, median ms, median detector calls)"
    )
    print(f"{'condition':28s} {'n':>3s}" + "".join(f" | {name:>32s}" for name in detectors))
    for cond in conditions:
        cells = []
        for name in detectors:
            faces, hits, fp, times, calls = stats[cond, name]
            found = f"recall {hits / faces:4.2f}, FP {fp}" if faces else f"FP {fp}"
            cells.append(f"{found}, {1000 * np.median(times):5.0f} ms, {np.median(calls):4.1f} calls")
        print(f"{cond:28s} {len(stats[cond, 'default'][3]):3d}" + "".join(f" | {c:>32s}" for c in cells))
    det = detectors["default"]
    for (w, h), rgb in face_free.items():
        det._tiles(rgb)  # warm-up: the first run at a new tile shape builds its anchors
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            det._tiles(rgb)
            times.append(time.perf_counter() - t0)
        wh, ww = shrink_array(rgb, WORK_SIZE)[0].shape[:2]
        tiles = tile_grid(wh, det.full_size) * tile_grid(ww, det.full_size)
        ms = 1000 * float(np.median(times))
        print(
            f"tiled pass alone, face-free {w}x{h} photo: {tiles} tiles of {det.full_size} px on its {ww}x{wh} "
            f"copy, {ms:.0f} ms (median of 5) = {ms / (ww * wh / 1e6):.0f} ms per megapixel of that copy, "
            f"{ms / tiles:.0f} ms a tile"
        )
    print(
        f"cap: {tile_grid(WORK_SIZE, det.full_size) ** 2} tiles (the tiled pass searches a photo at up to "
        f"{WORK_SIZE} px on its longer side)"
    )


def full_pass_share(scenes: list[Scene]) -> None:
    """How often the default detector pays for the 640 px pass on photos whose face the fast
    pass could find (one portrait of 55 px or more, and the example photos)."""
    from fer_hub.faces import RetinaFaceDetector

    det = RetinaFaceDetector()
    det.net = _CountSizes(det.net)
    big = [
        s
        for s in scenes
        if s.condition.startswith(("portrait 200px", "portrait 100px")) or s.condition == "example photo"
    ]
    full = 0
    for s in big:
        det.net.sizes.clear()
        det(s.image)
        full += max(det.net.sizes) > det.detect_size
    print(
        f"\ndefault detector: 640 px pass taken on {full} of {len(big)} scenes with one 55 px or larger "
        f"face (portraits of 200 and 100 px heads, the example photos)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="../shared/fer2013")
    p.add_argument("--faces", type=int, default=20, help="FER-2013 test faces per single-face condition")
    p.add_argument(
        "--model", default=str(ROOT / "space" / "checkpoints" / "custom-cnn"), help="for end-to-end accuracy"
    )
    p.add_argument("--sweep", action="store_true", help="also sweep RetinaFace's score threshold")
    p.add_argument("--big-only", action="store_true", help="only the big photos (no FER-2013 needed)")
    args = p.parse_args()
    torch.set_num_threads(2)
    print(f"{describe_cpu()}; torch {torch.__version__} ({torch.get_num_threads()} threads)")
    if args.big_only:
        big_photos()
        return
    from fer_hub.faces import HaarDetector, RetinaFaceDetector
    from fer_hub.predict import Predictor
    from fer_hub.training.data import load_fer2013

    data = load_fer2013(args.dataset, log=lambda *_: None)
    scenes = build_scenes(data, args.faces)
    count = {c: sum(s.condition == c for s in scenes) for c in MULTI}
    n_people = sum(s.condition.startswith("portrait ") for s in scenes)
    n_fer = sum(s.condition.startswith("FER ") for s in scenes)
    print(
        f"{len(scenes)} scenes: {n_people} one-portrait (15 size x tilt conditions + dim light), "
        f"{count['2 portraits']} two- and {count['3 portraits']} three-portrait, {n_fer} one-FER-face "
        f"({args.faces} faces per condition), {count['2 FER faces']} two- and {count['3 FER faces']} "
        f"three-FER-face, 2 example photos, {len(FACE_FREE)} face-free"
    )
    model_ok = (Path(args.model) / "model.safetensors").is_file()
    detectors = {
        "haar @320": HaarDetector(),
        "retinaface @320 only": RetinaFaceDetector(full_size=320, tilts=(), tiled=False),
        "retinaface @320, then @640 if none": RetinaFaceDetector(hint=1.0, tilts=(), tiled=False),
        "retinaface @320, then @640 if none or doubtful (hint 0.2)": RetinaFaceDetector(
            hint=0.2, tilts=(), tiled=False
        ),
        "retinaface @320, then @640 if none or doubtful (hint 0.025)": RetinaFaceDetector(
            tilts=(), tiled=False
        ),
        "  + tilted passes (+-25) if still none": RetinaFaceDetector(tiled=False),
        "  + tiled pass at up to 2048 px if still none (default)": RetinaFaceDetector(),
        "retinaface @640": RetinaFaceDetector(detect_size=640, tilts=(), tiled=False),
    }
    results = {}
    for name, det in detectors.items():
        predictor = Predictor.from_pretrained(args.model, detector=det) if model_ok else None
        results[name] = run(det, scenes, predictor)
    conds = list(next(iter(results.values()))["recall"])
    names = list(results)
    print("\nrecall per condition (columns: " + "; ".join(f"[{i}] {n}" for i, n in enumerate(names)) + ")")
    print(f"{'condition':26s}" + "".join(f"{f'[{i}]':>7s}" for i in range(len(names))))
    for c in conds:
        print(f"{c:26s}" + "".join(f"{results[n]['recall'][c]:7.2f}" for n in names))
    width = max(len(n) for n in names)
    print("\nsummary (recall: share of faces found; 2/3 ...: share of scenes with every face found):")
    print(
        f"{'':{width}s} {'portraits':>9s} {'2 portr':>7s} {'3 portr':>7s} {'FER':>6s} {'2 FER':>6s} {'3 FER':>6s} "
        f"{'FP faces':>8s} {'FP free/20':>10s} {'IoU':>5s} {'ms p50':>6s} {'ms p95':>6s} {'acc e2e':>7s} {'acc crop':>8s}"
    )
    for name, r in results.items():
        acc = (
            f"{r['acc_e2e']:7.3f} {r['acc_crop']:8.3f}"
            if r["acc_e2e"] is not None
            else f"{'-':>7s} {'-':>8s}"
        )
        m = r["multi_all_found"]
        print(
            f"{name:{width}s} {r['recall_portraits']:9.3f} {m['2 portraits']:7.2f} {m['3 portraits']:7.2f} "
            f"{r['recall_fer']:6.3f} {m['2 FER faces']:6.2f} {m['3 FER faces']:6.2f} {r['fp_face_scenes']:8d} "
            f"{r['fp_free_scenes']:10d} {r['mean_iou']:5.2f} {r['ms_median']:6.1f} {r['ms_p95']:6.1f} {acc}"
        )
    if model_ok:
        print(
            f"(acc e2e: {args.model} on the crops the Predictor makes of the found faces; acc crop: on their original 48x48)"
        )
    full_pass_share(scenes)
    big_photos()
    if args.sweep:
        print("\nRetinaFace score threshold (default two-pass detector):")
        for t in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9):
            r = run(RetinaFaceDetector(score=t), scenes)
            print(
                f"  score {t:.1f}: portraits {r['recall_portraits']:.3f}, FER {r['recall_fer']:.3f}, "
                f"2 portraits {r['multi_all_found']['2 portraits']:.2f}, "
                f"FP in face scenes {r['fp_face_scenes']}, FP in 20 face-free {r['fp_free_scenes']}"
            )


if __name__ == "__main__":
    main()
