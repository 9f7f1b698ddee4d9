"""How long FER-2013 takes to load: the first decode (cold caches) and a cached second load.

    python benchmarks/bench_data.py --dataset ../shared/fer2013

Each phase runs in a fresh Python process with its own empty caches for the first one, so the
numbers are what a user sees on a first and a second `train_hub.py` run. Prints wall-clock seconds
of `load_fer2013` (imports excluded) and of the whole process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def phase(dataset: str) -> None:
    t0 = time.perf_counter()
    from fer_hub.training.data import load_fer2013

    t1 = time.perf_counter()
    data = load_fer2013(dataset, log=lambda *_: None)
    t2 = time.perf_counter()
    print(
        f"{t2 - t1:.2f} {t1 - t0:.2f} {len(data.x_train)} {len(data.x_val)} {0 if data.x_test is None else len(data.x_test)}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="../shared/fer2013")
    p.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        return phase(args.dataset)
    from fer_hub.hardware import describe_cpu

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "FER_HUB_CACHE": f"{tmp}/fer_hub",
            "HF_DATASETS_CACHE": f"{tmp}/datasets",
            "HF_HUB_OFFLINE": "1",
            "TQDM_DISABLE": "1",
        }
        print(f"{describe_cpu()}; dataset {args.dataset}; caches in a fresh temp dir", flush=True)
        for name in ("first load (decode, cold caches)", "second load (cached)"):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--phase", "--dataset", args.dataset],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            wall = time.perf_counter() - t0
            load_s, import_s, n_train, n_val, n_test = out
            print(
                f"{name:34s} load_fer2013 {float(load_s):6.2f} s | process {wall:6.2f} s "
                f"(imports {float(import_s):.2f} s) | train {n_train} val {n_val} test {n_test}"
            )


if __name__ == "__main__":
    main()
