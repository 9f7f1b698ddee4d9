"""PNG figures for a training run: learning curves and confusion matrices (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_history", "plot_confusion_matrix"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: CI, Spaces and servers have no display
    import matplotlib.pyplot as plt

    return plt


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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
