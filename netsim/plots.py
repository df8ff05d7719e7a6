"""Standard figures of a run directory (``netsim plot RUN_DIR``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from netsim.runs import load_run  # noqa: E402

__all__ = ["plot_run"]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the standard PNG figures of a run and return their paths.

    * ``rates.png``: sum and minimum user rate per frame;
    * ``sync.png``: residual |TO| and |CFO| (max and RMS over APs) per frame, log scale;
    * ``users.png``: true trajectories and position estimates in the area, with the APs;
    * ``sinr_cdf.png``: empirical CDF of the per-subframe effective SINR of every user.
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    f, users, sub = run.frames, run.users, run.subframes
    paths = []

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(f.t_s, f.sum_rate_bps_hz, label="sum rate")
    ax.plot(f.t_s, f.min_rate_bps_hz, label="min user rate")
    ax.set(xlabel="time (s)", ylabel="rate (bit/s/Hz)", title="Throughput per frame")
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / "rates.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, col, unit in ((axes[0], "residual_to", "s"), (axes[1], "residual_cfo", "Hz")):
        suffix = "s" if unit == "s" else "hz"
        ax.semilogy(f.t_s, f[f"{col}_max_{suffix}"].abs() + 1e-300, label="max over APs")
        ax.semilogy(f.t_s, f[f"{col}_rms_{suffix}"].abs() + 1e-300, label="RMS over APs")
        ax.set(xlabel="time (s)", ylabel=f"|{col.replace('_', ' ')}| ({unit})")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("Residual synchronization error (relative to the reference AP)")
    paths.append(_save(fig, out / "sync.png"))

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    aps = run.aps[run.aps.frame == run.aps.frame.min()] if len(run.aps) else None
    for k, g in users.groupby("user"):
        line, = ax.plot(g.x_m, g.y_m, lw=1, label=f"user {k}")
        ax.plot(g.x_hat_m, g.y_hat_m, ".", ms=2, color=line.get_color(), alpha=0.5)
    import yaml

    scenario = yaml.safe_load((Path(run_dir) / "scenario.yaml").read_text())
    dep = scenario["deployment"]
    ax.set(xlim=(0, dep["width_m"]), ylim=(0, dep["height_m"]), xlabel="x (m)", ylabel="y (m)",
           title="Users: trajectories (lines) and estimates (dots)", aspect="equal")
    if aps is not None and len(aps):
        ax.plot(aps.x_m, aps.y_m, "k^", ms=6, label="APs")
    ax.legend(fontsize=7, loc="upper right")
    paths.append(_save(fig, out / "users.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for k, g in sub.groupby("user"):
        x = np.sort(g.sinr_db.to_numpy())
        ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=f"user {k}")
    ax.set(xlabel="effective SINR (dB)", ylabel="CDF", title="Per-subframe SINR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "sinr_cdf.png"))
    return paths
