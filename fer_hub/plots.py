"""PNG figures of an analysis: each tracked face's expressions over time (matplotlib, no display).
The training run's figures are in `fer_hub.training.plots`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_tracks"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: CI, Spaces and servers have no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, title: str = "") -> Path:
    """Title, tight layout, PNG at 100 dpi, and free the figure (servers draw many)."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_tracks(rows: list[dict], path: str | Path, *, max_tracks: int = 6, title: str = "") -> Path:
    """One panel per tracked face (the `max_tracks` seen longest; the title says how many were
    left out): its seven smoothed probabilities over time, coloured as the boxes in `fer_hub.draw`."""
    from .draw import COLORS
    from .labels import EMOTIONS

    plt = _pyplot()
    every = sorted({r["track"] for r in rows}, key=lambda t: -sum(r["track"] == t for r in rows))
    tracks = every[:max_tracks]
    if len(every) > len(tracks):  # say what is not drawn, rather than let it look like all
        title = f"{title}\n{len(tracks)} of {len(every)} faces shown: the {len(tracks)} seen longest".strip()
    n = max(1, len(tracks))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.4 * n + 0.6), sharex=True, squeeze=False)
    for ax, track in zip(axes[:, 0], tracks):
        mine = [r for r in rows if r["track"] == track]
        t = [r["time_s"] for r in mine]
        for e in EMOTIONS:
            ax.plot(
                t,
                [r[e] for r in mine],
                ".-",
                ms=3,
                lw=1.2,
                color=[c / 255 for c in COLORS[e]],
                label=e,
            )
        ax.set(ylim=(0, 1), ylabel="probability", title=f"face {track}")
        ax.grid(alpha=0.3)
    if not tracks:
        axes[0, 0].text(0.5, 0.5, "no face found in the analysed frames", ha="center", va="center")
    axes[-1, 0].set_xlabel("time (s)")
    # beside the panels, not on them: inside, the key hid the top of the curves it names
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, path, title)
