"""The run's evaluations on disk: ``metrics.csv`` (one row per evaluation) and ``loss.png`` (the
loss curve), both rewritten atomically after each evaluation."""

from __future__ import annotations

import csv
from pathlib import Path

from corpus.core.io import atomic_path

METRICS = "metrics.csv"
PLOT = "loss.png"
METRIC_FIELDS = ["step", "train_loss", "val_loss", "val_bpb", "lr", "tokens_per_s", "elapsed_s"]


class MetricsLog:
    """The rows of ``out_dir/metrics.csv``: on resume, the existing rows up to the resumed step are
    kept (later ones belong to the interrupted run). Only process 0 writes (``enabled``)."""

    def __init__(self, out_dir: Path, resumed_step: int, enabled: bool = True):
        self.csv_path, self.plot_path, self.enabled = out_dir / METRICS, out_dir / PLOT, enabled
        self.rows = read_metrics(self.csv_path, up_to=resumed_step) if enabled else []

    def add(self, row: dict) -> None:
        if not self.enabled:
            return
        self.rows.append(row)
        write_metrics(self.csv_path, self.rows)
        plot_losses(self.rows, self.plot_path)


def read_metrics(path: Path, up_to: int) -> list[dict]:
    if not path.exists() or up_to == 0:
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["step"]) <= up_to]


def write_metrics(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            w.writeheader()
            for row in rows:
                w.writerow({k: row.get(k) for k in METRIC_FIELDS})


def plot_losses(rows: list[dict], path: Path) -> None:
    """The loss curve (train and validation loss by step) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(s, float(r["train_loss"])) for s, r in zip(steps, rows) if r.get("train_loss") not in (None, "")]
    if train:
        ax.plot(*zip(*train), label="train loss")
    ax.plot(steps, [float(r["val_loss"]) for r in rows], marker="o", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
