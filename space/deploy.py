"""Build a self-contained Space bundle and (optionally) upload it to a Hugging Face Space.

    python space/deploy.py --build-only build/space          # just write the bundle
    python space/deploy.py --repo-id ORG/fer-hub-space        # build in a temp dir and upload

The bundle is what the Space runs: app.py, README.md (Spaces YAML), requirements.txt, examples/,
checkpoints/ and a copy of the `fer_hub` package, so the Space needs nothing from this repo.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # this script ships the repo's fer_hub, installed or not
from fer_hub.hub import NOT_UPLOADED, check_can_push, push_folder  # noqa: E402

SPACE_FILES = ("app.py", "components.py", "README.md", "requirements.txt")


def build_bundle(dest: str | Path, checkpoints: str | Path | None = None) -> Path:
    """Write the Space bundle into `dest` (created; must be empty or absent)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; give an empty or new folder")
    checkpoints = Path(checkpoints) if checkpoints else HERE / "checkpoints"
    missing = [
        n for n in ("custom-cnn", "cnn-model2") if not (checkpoints / n / "model.safetensors").is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"no checkpoint for {', '.join(missing)} in {checkpoints}; create with "
            + "; ".join(
                f"python train_hub.py --model {n} --recipe strong --output {checkpoints / n}" for n in missing
            )
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name in SPACE_FILES:
        shutil.copy2(HERE / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *NOT_UPLOADED)
    shutil.copytree(HERE / "examples", dest / "examples", ignore=ignore)
    shutil.copytree(checkpoints, dest / "checkpoints", ignore=ignore)
    shutil.copytree(ROOT / "fer_hub", dest / "fer_hub", ignore=ignore)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo-id", help="Space repo ORG/NAME to create or update")
    p.add_argument("--build-only", metavar="DIR", help="write the bundle to DIR and stop")
    p.add_argument(
        "--checkpoints", help="folder with custom-cnn/ and cnn-model2/ (default: space/checkpoints)"
    )
    p.add_argument("--private", action="store_true")
    args = p.parse_args(argv)
    if not args.build_only and not args.repo_id:
        p.error("give --repo-id ORG/NAME to upload, or --build-only DIR")
    try:
        if args.build_only:
            print(f"bundle written to {build_bundle(args.build_only, args.checkpoints)}")
            return 0
        check_can_push(args.repo_id)  # before building anything
        with tempfile.TemporaryDirectory() as tmp:
            bundle = build_bundle(Path(tmp) / "space", args.checkpoints)
            url = push_folder(
                bundle,
                args.repo_id,
                repo_type="space",
                private=args.private,
                commit_message="Deploy fer_hub Space",
            )
        print(f"uploaded: {url}")
    except (FileNotFoundError, FileExistsError, ValueError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
