"""The book's figure style, set once (every chapter).

    fig, ax = plotting.figure()          # house defaults: size, fonts, grid, colours
    ...
    plotting.save(fig, run.out, "ch03_mlp")   # -> <out>/ch03_mlp.png, written atomically

PNG metadata that changes from run to run (the matplotlib version string) is left out, so the
same numbers give the same file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no screen is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402

from scratchlm.fileio import atomic_write  # noqa: E402

# A colour-blind-safe cycle (Okabe & Ito), in the order chapters use for their series.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=COLORS),
    "legend.frameon": False,
    "lines.linewidth": 1.6,
}
plt.rcParams.update(STYLE)


def figure(nrows: int = 1, ncols: int = 1, width: float = 6.0, height: float = 4.0, **kwargs):
    """A new figure in the house style: `fig, ax = figure()` or `fig, axes = figure(1, 2)`."""
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kwargs)


def save(fig, out: Path, name: str) -> Path:
    """Save `fig` as `<out>/<name>.png`, atomically (see scratchlm.fileio), and close it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path
