"""Build a self-contained Space bundle and (optionally) upload it to a Hugging Face Space.

    python space/deploy.py --build-only build/space          # just write the bundle
    python space/deploy.py --repo-id ORG/fer-hub-space        # build in a temp dir and upload
    python space/deploy.py --repo-id ORG/fer-hub-space --model-repo ORG/fer-cnn-model2,ORG/fer-custom-cnn
    python space/deploy.py --static --repo-id ORG/fer-hub-browser --space-url https://huggingface.co/spaces/ORG/fer-hub-space
    python space/deploy.py --repo-id ORG/fer-hub-space --static-url https://huggingface.co/spaces/ORG/fer-hub-browser

`--static` builds the in-browser app instead (`fer-hub export-web`: a static Space, free to host);
`--space-url` is the Gradio Space its page links to, `--static-url` the static app the Gradio
Space's page links to.

The bundle is what the Space runs: app.py, README.md (Spaces YAML), requirements.txt, examples/,
checkpoints/ and a copy of the `fer_hub` package, so the Space needs nothing from this repo.
The README's YAML gains `datasets:` (FER-2013 on the Hub) and, given --model-repo, `models:`:
the Hub then links the Space and the model pages to each other.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # this script ships the repo's fer_hub, installed or not
from fer_hub.errors import FerHubError, InputError, NotFoundError  # noqa: E402
from fer_hub.models import SHIPPED_MODELS  # noqa: E402
from fer_hub.training.data import DEFAULT_DATASET  # noqa: E402
from fer_hub.training.hub import NOT_UPLOADED, check_can_push, check_repo_id, push_folder  # noqa: E402

# The bundle is built from these lists alone: nothing else in the folders (a stray .env, a smoke
# run, a training state, caches) can reach a public Space.
SPACE_FILES = ("app.py", "components.py", "views.py", "README.md", "requirements.txt")
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MODEL_FILES = (
    "model.safetensors",
    "model.int8.onnx",  # fer_hub.onnx_model.INT8_FILE: the CPU's default scoring, where chosen
    "config.json",
    "README.md",
    "metrics.json",
    "history.json",
    "training_args.json",
    "training_curves.png",
    "confusion_matrix_validation.png",
    "confusion_matrix_test.png",
    "reliability_test.png",
)
PACKAGE_FILES = ("*.py", "weights/*.onnx", "weights/LICENSE*")  # fer_hub/ and its sub-packages


def build_bundle(
    dest: str | Path,
    checkpoints: str | Path | None = None,
    model_repos: Sequence[str] = (),
    static_url: str | None = None,
) -> Path:
    """Write the Space bundle into `dest` (created; must be empty or absent) from the allow-lists
    above; refuses a checkpoint that is not a finished model (a training state beside it, an
    interrupted or `--limit` run). `model_repos`, the Hub repos the checkpoints are published
    as, are listed in the Space card's `models:`."""
    for repo_id in model_repos:
        check_repo_id(repo_id, "--model-repo")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest} is not empty; give an empty or new folder")
    checkpoints = Path(checkpoints) if checkpoints else HERE / "checkpoints"
    missing = [n for n in SHIPPED_MODELS if not (checkpoints / n / "model.safetensors").is_file()]
    if missing:
        raise NotFoundError(
            f"no checkpoint for {', '.join(missing)} in {checkpoints}; create with "
            + "; ".join(
                f"python train_hub.py --model {n} --recipe strong --output {checkpoints / n}" for n in missing
            )
        )
    for name in SHIPPED_MODELS:
        _check_finished(checkpoints / name)
    files = [(HERE / name, name) for name in SPACE_FILES]
    files += [
        (f, f"examples/{f.name}")
        for f in sorted((HERE / "examples").iterdir())
        if f.suffix.lower() in EXAMPLE_SUFFIXES and not f.name.startswith(".")
    ]
    for name in SHIPPED_MODELS:
        files += [
            (checkpoints / name / f, f"checkpoints/{name}/{f}")
            for f in MODEL_FILES
            if (checkpoints / name / f).is_file()
        ]
    package = ROOT / "fer_hub"
    files += [
        (f, f"fer_hub/{f.relative_to(package)}")
        for pattern in PACKAGE_FILES
        for f in sorted(package.rglob(pattern))
        if not any(part.startswith((".", "__pycache__")) for part in f.relative_to(package).parts)
    ]
    for source, name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)
    _write_space_card(dest / "README.md", model_repos)
    if static_url:
        (dest / "links.json").write_text(json.dumps({"static_app": static_url}))
    return dest


def _write_space_card(readme: Path, model_repos: Sequence[str]) -> None:
    """Add to the Space card's YAML what the Hub links a Space to: its models and their data.

    Without Hub repos the bundled checkpoints have no Hub identity, so `models:` is left out
    rather than guessed."""
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(readme)
    card.data.models = list(model_repos) or None
    card.data.datasets = [DEFAULT_DATASET]
    card.save(readme)


def _check_finished(folder: Path) -> None:
    """A model folder fit to serve: not a run in progress, not a smoke run, not interrupted."""
    if any(match for pattern in NOT_UPLOADED for match in folder.glob(pattern)):
        raise InputError(f"{folder} holds a training state: the run there has not finished")
    args_file, metrics_file = folder / "training_args.json", folder / "metrics.json"
    args = json.loads(args_file.read_text()) if args_file.is_file() else {}
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if args.get("limit") or metrics.get("interrupted"):
        why = f"trained on --limit {args['limit']} images" if args.get("limit") else "an interrupted run"
        raise InputError(f"{folder} is a smoke run ({why}), not a model to serve")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo-id", help="Space repo ORG/NAME to create or update")
    p.add_argument("--build-only", metavar="DIR", help="write the bundle to DIR and stop")
    p.add_argument(
        "--checkpoints", help="folder with custom-cnn/ and cnn-model2/ (default: space/checkpoints)"
    )
    p.add_argument(
        "--model-repo",
        default="",
        metavar="ORG/NAME[,ORG/NAME]",
        help="Hub model repos the bundled checkpoints are published as (comma-separated, as in "
        "FER_MODEL_REPO); listed in the Space card's models:",
    )
    p.add_argument("--private", action="store_true")
    p.add_argument(
        "--static", action="store_true", help="the static in-browser app (fer-hub export-web) instead"
    )
    p.add_argument("--space-url", help="with --static: the Gradio Space the page links to")
    p.add_argument("--static-url", help="the static in-browser app the Gradio Space links to")
    args = p.parse_args(argv)
    if not args.build_only and not args.repo_id:
        p.error("give --repo-id ORG/NAME to upload, or --build-only DIR")
    model_repos = [r.strip() for r in args.model_repo.split(",") if r.strip()]
    if args.static and args.static_url:
        p.error("--static-url is the Gradio Space's link to the static app; with --static give --space-url")

    def build(dest) -> Path:
        if args.static:
            from fer_hub.web_export import export_web

            folder = Path(args.checkpoints) if args.checkpoints else HERE / "checkpoints"
            export_web(
                dest, [folder / n for n in SHIPPED_MODELS], space_url=args.space_url, model_repos=model_repos
            )
            return Path(dest)
        return build_bundle(dest, args.checkpoints, model_repos, args.static_url)

    try:
        if args.build_only:
            print(f"bundle written to {build(args.build_only)}")
            return 0
        for repo_id in model_repos:  # before the token check, which asks the Hub
            check_repo_id(repo_id, "--model-repo")
        check_can_push(args.repo_id)  # before building anything
        with tempfile.TemporaryDirectory() as tmp:
            bundle = build(Path(tmp) / "space")
            url = push_folder(
                bundle,
                args.repo_id,
                repo_type="space",
                private=args.private,
                commit_message="Deploy fer_hub " + ("in-browser app" if args.static else "Space"),
                space_sdk="static" if args.static else "gradio",
            )
        print(f"uploaded: {url}")
    except FerHubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
