"""Train a FER-2013 expression CNN and write (optionally push) a Hub-ready model folder.

    python train_hub.py --model custom-cnn --dataset ../shared/fer2013 --epochs 1 --limit 2000 --output out
    python train_hub.py --help

All the work is in `fer_hub.training`; this file keeps the documented command short.
"""

from fer_hub.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
