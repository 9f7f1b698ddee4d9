"""PNG figures for a training run: learning curves, confusion matrices and calibration (matplotlib,
no display)."""

from __future__ import annotations

from pathlib import Path

from ..plots import _pyplot, _save

__all__ = ["plot_history", "plot_confusion_matrix", "plot_reliability"]


def plot_history(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss, accuracy (train and validation) and learning rate per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    axes[0].set(title="loss", xlabel="epoch")
    axes[1].plot(epochs, [h["train_acc"] for h in history], "o-", label="train")
    axes[1].plot(epochs, [h["val_acc"] for h in history], "o-", label="validation")
    axes[1].set(title="accuracy", xlabel="epoch")
    axes[2].plot(epochs, [h["lr"] for h in history], "o-")
    axes[2].set(title="learning rate (end of epoch)", xlabel="epoch")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, path, title)


def plot_confusion_matrix(cm: list[list[int]], labels, path: str | Path, title: str = "") -> Path:
    """Row-normalized confusion matrix (true class per row) with the counts written in."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(cm)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if rates[i, j] > 0.5 else "black"
            ax.text(
                j, i, f"{rates[i, j]:.2f}\n{counts[i, j]}", ha="center", va="center", fontsize=7, color=color
            )
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return _save(fig, path)


def plot_reliability(test_report: dict, path: str | Path) -> Path:
    """Reliability diagram (accuracy vs confidence per bin, before and after
    calibration) next to the coverage-accuracy curve of the calibrated model."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    ax = axes[0]
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    for key, style, name in (
        ("reliability_before", "o--", f"softmax (ECE {test_report['ece_before']:.3f})"),
        ("reliability_after", "o-", f"calibrated (ECE {test_report['ece_after']:.3f})"),
    ):
        bins = [b for b in test_report[key] if b["n"]]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], style, label=name)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.set_title("reliability on test (15 bins)")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    curve = [c for c in test_report["coverage_accuracy"] if c["accuracy"] is not None]
    ax.plot([c["coverage"] for c in curve], [c["accuracy"] for c in curve], "o-")
    ax.axvline(test_report["coverage"], color="gray", ls=":", label="kept by the 'uncertain' threshold")
    ax.set(xlabel="coverage (share of faces not flagged uncertain)", ylabel="accuracy of those faces")
    ax.set(xlim=(0, 1.02), ylim=(0, 1))
    ax.set_title("coverage vs accuracy on test")
    ax.legend(loc="lower left", fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, path)
