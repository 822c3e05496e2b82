"""Loss curves: (step, value) series per metric, saved as JSON and drawn as a PNG (matplotlib Agg).

The series travel inside training checkpoints, so a resumed run continues the same curve.
`python -m yume_env.train.curves curves.json [out.png]` redraws a PNG from a JSON file.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from yume_env.atomic import atomic_write, atomic_write_text


class Curves:
    """Named series of (step, value) points."""

    def __init__(self, series: dict[str, list[list[float]]] | None = None):
        self.series: dict[str, list[list[float]]] = {k: [list(p) for p in v] for k, v in (series or {}).items()}

    def log(self, step: int, **values: float) -> None:
        for name, value in values.items():
            value = float(value)
            if math.isfinite(value):
                self.series.setdefault(name, []).append([int(step), value])

    def last(self, name: str) -> float | None:
        points = self.series.get(name)
        return points[-1][1] if points else None

    def mean_last(self, name: str, n: int) -> float | None:
        points = self.series.get(name)
        if not points:
            return None
        tail = [v for _, v in points[-n:]]
        return sum(tail) / len(tail)

    def state_dict(self) -> dict[str, list[list[float]]]:
        return {k: [list(p) for p in v] for k, v in self.series.items()}

    def save_json(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.series))

    def save(self, json_path: str | os.PathLike, png_path: str | os.PathLike | None = None, title: str = "") -> None:
        """JSON always; the PNG as well when `png_path` is given."""
        self.save_json(json_path)
        if png_path is not None:
            plot_series(self.series, png_path, title=title)


def plot_series(series: dict[str, list[list[float]]], png_path: str | os.PathLike, title: str = "") -> None:
    """One panel per metric (log scale for positive losses), written atomically; nothing where
    matplotlib is not installed (GPU machines; the JSON holds the same numbers)."""
    try:
        import matplotlib
    except ImportError:
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in series if series[n]]
    if not names:
        names = ["(no data)"]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        points = series.get(name, [])
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, lw=0.8, alpha=0.5 if len(points) > 50 else 1.0)
            if len(points) > 50:  # a running mean makes trends readable under noise
                k = max(5, len(points) // 50)
                smooth = [
                    sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1])
                    for i in range(len(values))
                ]
                ax.plot(steps, smooth, lw=1.5)
            if "loss" in name and min(values) > 0:
                ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=90))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m yume_env.train.curves CURVES.json [OUT.png]", file=sys.stderr)
        return 2
    src = Path(argv[0])
    out = Path(argv[1]) if len(argv) > 1 else src.with_suffix(".png")
    plot_series(json.loads(src.read_text(encoding="utf-8")), out, title=src.stem)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
