"""Standard figures of a run or a sweep (``netsim plot RUN_DIR|SWEEP_DIR``).

Importable from notebooks: every ``fig_*`` function takes a loaded run
(:func:`netsim.load_run`) or sweep (:func:`netsim.load_sweep`) and returns a matplotlib
``Figure``; :func:`plot_run` / :func:`plot_sweep` write them all as PNG files.

Conventions: titles name the algorithm of the phase shown (oracles marked "oracle"), axes
carry units, legends sit outside the axes (never on the data), the map is padded so that
APs on the border are not clipped, and estimates are drawn as markers distinct from the
solid true tracks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "SWEEP_METRICS",
    "fig_localization",
    "fig_map",
    "fig_overhead",
    "fig_rate_cdf",
    "fig_rates",
    "fig_sinr_cdf",
    "fig_sweep",
    "fig_sync",
    "fig_wall",
    "plot_path",
    "plot_run",
    "plot_sweep",
    "sweep_statistics",
]

#: Markers of discrete events on time axes: kind -> (colour, line style).
EVENT_STYLE = {
    "replan": ("tab:purple", "--"),
    "outage": ("tab:red", "-"),
    "recovery": ("tab:green", "-"),
    "master_change": ("tab:purple", ":"),
    "reference_change": ("tab:brown", ":"),
    "music_fallback": ("tab:orange", ":"),
    "beamformer_fallback": ("tab:olive", ":"),
    "replan_failed": ("black", "--"),
}
#: Headline per-run metrics of a sweep: frames column -> (label, unit, log axis).
SWEEP_METRICS: dict[str, tuple[str, str, bool]] = {
    "sum_rate_bps_hz": ("sum spectral efficiency", "bit/s/Hz", False),
    "min_rate_bps_hz": ("min user spectral efficiency", "bit/s/Hz", False),
    "residual_to_rms_s": ("residual TO, RMS over APs", "s", True),
    "residual_cfo_rms_hz": ("residual CFO, RMS over APs", "Hz", True),
    "sensing_rmse_m": ("localization RMSE", "m", True),
    "overhead_fraction": ("sync overhead", "fraction of frame", False),
}
_ORACLE = {("sync", "genie"), ("sensing", "genie"), ("csi", "perfect")}


# ----------------------------------------------------------------------------- helpers
def _scenario(run) -> dict[str, Any]:
    import yaml

    path = Path(run.path) / "scenario.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def _algo(run, phase: str) -> str:
    sc = _scenario(run)
    section, key = {"sync": ("sync", "method"), "sensing": ("sensing", "method"),
                    "csi": ("comm", "csi"), "beamforming": ("comm", "beamforming"),
                    "power": ("comm", "power")}[phase]
    name = str((sc.get(section) or {}).get(key, "?"))
    return f"{name} (oracle)" if (phase, name) in _ORACLE else name


def _legend_outside(ax, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                  borderaxespad=0.0, **kw)


def _event_lines(ax, events, kinds=None) -> None:
    """Vertical lines at events (one legend entry per kind)."""
    if events is None or not len(events):
        return
    seen = set()
    for kind, g in events.groupby("kind", sort=True):
        if kind not in EVENT_STYLE or (kinds is not None and kind not in kinds):
            continue
        colour, ls = EVENT_STYLE[kind]
        times = np.unique(g.t_s.to_numpy(float))
        if times.size > 15:  # frequent: ticks along the top edge instead of lines over the data
            ax.plot(times, np.ones_like(times), "v", color=colour, ms=4, clip_on=False,
                    transform=ax.get_xaxis_transform(), label=f"{kind} ({len(g)})")
            continue
        for t in times:
            ax.axvline(t, color=colour, ls=ls, lw=0.8, alpha=0.7,
                       label=kind if kind not in seen else None)
            seen.add(kind)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _per_entity_lines(ax, df, entity: str, x: str, y: str, max_legend: int = 10,
                      transform=None) -> None:
    """One line per entity; above ``max_legend`` entities, thin grey lines for all of them
    with the median and the worst (largest) entity per time in colour."""
    groups = list(df.groupby(entity, sort=True))
    many = len(groups) > max_legend
    name = "AP" if entity == "ap" else entity
    cmap = plt.get_cmap("viridis", max(len(groups), 2))
    for i, (k, g) in enumerate(groups):
        v = g[y].to_numpy(float)
        if transform is not None:
            v = transform(v)
        ax.plot(g[x].to_numpy(float), v, lw=0.6 if many else 1,
                color="0.7" if many else cmap(i), alpha=0.6 if many else 1.0,
                label=(f"{name} {k}" if not many else
                       (f"each {name} ({len(groups)})" if i == 0 else None)))
    if many:
        v = df[y].to_numpy(float)
        if transform is not None:
            v = transform(v)
        t = df[x].to_numpy(float)
        tab = (__import__("pandas").DataFrame({"t": t, "v": v}).groupby("t").v)
        ax.plot(tab.median().index, tab.median().to_numpy(), color="k", lw=1.5,
                label=f"median over {name}s")
        ax.plot(tab.max().index, tab.max().to_numpy(), color="tab:red", lw=1.2,
                label=f"max over {name}s")


# ----------------------------------------------------------------------------- run figures
def fig_sync(run):
    """Residual TO, CFO and carrier phase of every AP (relative to the reference) over time,
    with the sync rounds as ticks and replan / outage / master-change events as lines."""
    aps, f = run.aps, run.frames
    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    rows = [("residual_to_s", "|residual TO| (s)", True),
            ("residual_cfo_hz", "|residual CFO| (Hz)", True),
            ("residual_phase_rad", "residual carrier phase (rad)", False)]
    others = aps[~aps.is_reference.astype(bool)] if len(aps) else aps
    for ax, (col, label, log) in zip(axes, rows, strict=True):
        if len(others):
            _per_entity_lines(ax, others, "ap", "t_s", col,
                              transform=(lambda v: np.abs(v)) if log else None)
        vals = np.abs(others[col].to_numpy(float)) if len(others) else np.array([])
        finite = vals[np.isfinite(vals)]
        if log and finite.size and finite.max() > 0:
            ax.set_yscale("log")
        elif log and finite.size:
            ax.text(0.01, 0.9, "identically 0", transform=ax.transAxes, fontsize=8, va="top")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        _event_lines(ax, run.events, {"replan", "outage", "recovery", "master_change",
                                      "reference_change", "replan_failed"})
    if len(f) and "sync_ran" in f:
        t_sync = f.t_s[f.sync_ran.astype(bool)].to_numpy(float)
        axes[0].plot(t_sync, np.zeros_like(t_sync), "|", color="k", ms=8,
                     transform=axes[0].get_xaxis_transform(), label="sync round", clip_on=False)
    for ax in axes:
        _legend_outside(ax)
    axes[-1].set_xlabel("network time (s)")
    ref = aps.ap[aps.is_reference.astype(bool)].unique() if len(aps) else []
    fig.suptitle(f"Residual synchronization error per AP, sync: {_algo(run, 'sync')} "
                 f"(relative to reference AP {', '.join(map(str, ref)) or '?'})")
    fig.tight_layout()
    return fig


def fig_localization(run):
    """Localization error per user over time with sqrt(CRLB) (``users.crlb_m``) dashed, and
    the error CDF."""
    users = run.users
    fig, (ax, ax_cdf) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    groups = list(users.groupby("user", sort=True))
    cmap = plt.get_cmap("tab10")
    for i, (k, g) in enumerate(groups):
        c = cmap(i % 10)
        show = len(groups) <= 10
        ax.plot(g.t_s, g.loc_err_m, lw=1, color=c, label=f"user {k} error" if show else None)
        ax.plot(g.t_s, g.crlb_m.to_numpy(float), lw=1, ls="--", color=c, alpha=0.7,
                label=f"user {k} sqrt(CRLB)" if show and i == 0 else None)
    err = users.loc_err_m.to_numpy(float) if len(users) else np.array([])
    err = err[np.isfinite(err)]
    if err.size and err.max() > 0 and (err > 0).any():
        ax.set_yscale("log")
    ax.set(xlabel="network time (s)", ylabel="localization error (m)")
    ax.grid(alpha=0.3, which="both")
    _event_lines(ax, run.events, {"music_fallback", "outage", "recovery"})
    if len(groups) > 10:
        ax.plot([], [], "k-", lw=1, label="error (one line per user)")
        ax.plot([], [], "k--", lw=1, label="sqrt(CRLB)")
    else:
        ax.plot([], [], "k--", lw=1, label="dashed: sqrt(CRLB)")
    _legend_outside(ax)
    if err.size:
        x = np.sort(err)
        ax_cdf.plot(x, np.arange(1, x.size + 1) / x.size, color="k")
        if x.max() > 0 and (x > 0).any():
            ax_cdf.set_xscale("log")
    ax_cdf.set(xlabel="localization error (m)", ylabel="CDF over user-frames", ylim=(0, 1.02))
    ax_cdf.grid(alpha=0.3, which="both")
    fig.suptitle(f"Localization, sensing: {_algo(run, 'sensing')}")
    fig.tight_layout()
    return fig


def fig_rates(run):
    """Per-user spectral efficiency and transmit power per subframe, and the frame sum."""
    sub, f = run.subframes, run.frames
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    if len(f):
        axes[0].plot(f.t_s, f.sum_rate_bps_hz, color="k", label="sum over users")
        axes[0].plot(f.t_s, f.min_rate_bps_hz, color="tab:red", label="min over users")
    axes[0].set_ylabel("spectral efficiency\nper frame (bit/s/Hz)")
    if len(sub):
        _per_entity_lines(axes[1], sub, "user", "t_s", "rate_bps_hz")
        _per_entity_lines(axes[2], sub, "user", "t_s", "power_w",
                          transform=lambda v: 10 * np.log10(np.maximum(v, 1e-30) / 1e-3))
    axes[1].set_ylabel("user spectral efficiency\nper subframe (bit/s/Hz)")
    axes[2].set_ylabel("user transmit power\nper subframe (dBm)")
    axes[2].set_xlabel("network time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
        _legend_outside(ax)
    fig.suptitle(f"Communication, beamforming: {_algo(run, 'beamforming')}, power: "
                 f"{_algo(run, 'power')}, CSI: {_algo(run, 'csi')}")
    fig.tight_layout()
    return fig


def _cdf(ax, values, label=None, **kw):
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    if x.size:
        ax.plot(x, np.arange(1, x.size + 1) / x.size, label=label, **kw)


def fig_rate_cdf(run):
    """CDF of the per-user spectral efficiency over subframes (all users, and per user)."""
    sub = run.subframes
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = list(sub.groupby("user", sort=True)) if len(sub) else []
    if len(groups) <= 10:
        for k, g in groups:
            _cdf(ax, g.rate_bps_hz, label=f"user {k}", lw=1)
    if len(sub):
        _cdf(ax, sub.rate_bps_hz, label="all users", color="k", lw=2)
    ax.set(xlabel="user spectral efficiency per subframe (bit/s/Hz)",
           ylabel="CDF over user-subframes", ylim=(0, 1.02),
           title=f"Rate CDF, {_algo(run, 'beamforming')} + {_algo(run, 'power')}")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def fig_sinr_cdf(run):
    """CDF of the effective SINR per user-subframe (SINR equivalent to the achieved rate)."""
    sub = run.subframes
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = list(sub.groupby("user", sort=True)) if len(sub) else []
    for k, g in groups if len(groups) <= 10 else []:
        _cdf(ax, g.sinr_db, label=f"user {k}", lw=1)
    if len(sub):
        _cdf(ax, sub.sinr_db, label="all users", color="k", lw=2)
    ax.set(xlabel="effective SINR (dB)", ylabel="CDF over user-subframes", ylim=(0, 1.02),
           title=f"Effective SINR, {_algo(run, 'beamforming')} + {_algo(run, 'power')}")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def fig_overhead(run):
    """Sync overhead and communication fraction (rho) of every frame."""
    f = run.frames
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if len(f):
        ax.plot(f.t_s, f.overhead_fraction, label="sync overhead (fraction of frame)")
        ax.plot(f.t_s, f.comm_fraction, label="comm fraction rho (of sense+comm time)")
    ax.set(xlabel="network time (s)", ylabel="fraction", ylim=(-0.02, 1.02),
           title=f"Overhead and time split, sync: {_algo(run, 'sync')}")
    ax.grid(alpha=0.3)
    _event_lines(ax, run.events, {"replan", "outage", "recovery"})
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def fig_wall(run):
    """Wall-clock time per phase: per frame over time and the total share."""
    f = run.frames
    phases = [c for c in ("wall_sync_s", "wall_sense_s", "wall_comm_s", "wall_power_s") if c in f]
    fig, (ax, ax_bar) = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    for c in phases:
        ax.plot(f.frame, f[c] * 1e3, lw=1, label=c.removeprefix("wall_").removesuffix("_s"))
    ax.set(xlabel="frame", ylabel="wall time per frame (ms)", title="Wall time per phase")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    totals = [float(f[c].sum()) for c in phases]
    ax_bar.bar([c.removeprefix("wall_").removesuffix("_s") for c in phases], totals,
               color="tab:gray")
    ax_bar.set(ylabel="total wall time (s)", title="Total per phase")
    ax_bar.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def fig_map(run):
    """APs (by cluster; masters and the reference marked), true user tracks (lines) and
    position estimates (crosses), on the deployment area padded so border APs show."""
    sc = _scenario(run)
    dep = sc.get("deployment") or {}
    width, height = float(dep.get("width_m", 100.0)), float(dep.get("height_m", 100.0))
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.add_patch(plt.Rectangle((0, 0), width, height, fill=False, ec="0.6", lw=1, ls="--"))
    aps, users = run.aps, run.users
    if len(aps):
        first = aps[aps.frame == aps.frame.min()]
        clusters = first.cluster.to_numpy(int)
        cmap = plt.get_cmap("tab20", max(int(clusters.max()) + 1, 2) if clusters.size else 2)
        ax.scatter(first.x_m, first.y_m, c=[cmap(c % 20) for c in clusters], marker="^", s=60,
                   edgecolors="k", linewidths=0.5, zorder=3, label="AP (colour: sync cluster)")
        m = first[first.is_master.astype(bool)]
        ax.scatter(m.x_m, m.y_m, marker="o", s=180, facecolors="none", edgecolors="k",
                   zorder=3, label="cluster master")
        r = first[first.is_reference.astype(bool)]
        ax.scatter(r.x_m, r.y_m, marker="*", s=260, color="gold", edgecolors="k", zorder=4,
                   label="reference AP")
    cmap_u = plt.get_cmap("tab10")
    for i, (k, g) in enumerate(users.groupby("user", sort=True) if len(users) else []):
        c = cmap_u(i % 10)
        ax.plot(g.x_m, g.y_m, "-", color=c, lw=1.5, label=f"user {k} true track"
                if len(users.user.unique()) <= 8 else None)
        ax.plot(g.x_hat_m, g.y_hat_m, "x", color=c, ms=4, mew=0.8, alpha=0.8)
        ax.plot(g.x_m.iloc[-1:], g.y_m.iloc[-1:], "o", color=c, ms=5)
    ax.plot([], [], "kx", ms=4, label=f"estimates ({_algo(run, 'sensing')})")
    ax.plot([], [], "k-", lw=1.5, label="true track (dot: last position)")
    xs = [0.0, width, *(aps.x_m.tolist() if len(aps) else [])]
    ys = [0.0, height, *(aps.y_m.tolist() if len(aps) else [])]
    pad = 0.05 * max(width, height)
    ax.set(xlim=(min(xs) - pad, max(xs) + pad), ylim=(min(ys) - pad, max(ys) + pad),
           xlabel="x (m)", ylabel="y (m)", aspect="equal",
           title=f"Deployment: APs, sync clusters, users; sensing: {_algo(run, 'sensing')}")
    ax.grid(alpha=0.2)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


RUN_FIGURES = {
    "sync": fig_sync,
    "localization": fig_localization,
    "rates": fig_rates,
    "rate_cdf": fig_rate_cdf,
    "sinr_cdf": fig_sinr_cdf,
    "overhead": fig_overhead,
    "wall": fig_wall,
    "users": fig_map,
}


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write every run figure as ``<name>.png`` (names: :data:`RUN_FIGURES`) and return the
    paths. ``out_dir`` defaults to ``RUN_DIR/plots``."""
    from netsim.runs import load_run

    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    return [_save(fn(run), out / f"{name}.png") for name, fn in RUN_FIGURES.items()]


# ----------------------------------------------------------------------------- sweep figures
def sweep_statistics(sweep, metric: str, by: list[str], confidence: float = 0.95):
    """Mean of a frames metric across replications with a Student-t confidence interval.

    Each run contributes its mean over frames (finite values only); the runs of a grid point
    are the replications. Returns a DataFrame with the ``by`` columns, ``mean``, ``lo``,
    ``hi`` (the interval) and ``n`` (replications with a finite value).
    """
    import pandas as pd
    from scipy import stats

    f = sweep.frames
    per_run = (f.assign(_v=f[metric].where(np.isfinite(f[metric].astype(float))))
               .groupby(["run_id", *by], sort=False, dropna=False)["_v"].mean().reset_index())
    rows = []
    for key, g in per_run.groupby(by, sort=True, dropna=False):
        v = g["_v"].to_numpy(float)
        v = v[np.isfinite(v)]
        n = v.size
        mean = float(v.mean()) if n else math.nan
        half = (float(stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
                if n > 1 else math.nan)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), "mean": mean, "lo": mean - half,
                     "hi": mean + half, "n": n})
    return pd.DataFrame(rows)


def fig_sweep(sweep, param: str, metrics: dict[str, tuple[str, str, bool]] | None = None):
    """Each headline metric versus ``param``: one line per combination of the other swept
    fields, the mean over replications with its 95 % confidence interval as error bars."""
    metrics = metrics or SWEEP_METRICS
    metrics = {k: v for k, v in metrics.items() if k in sweep.frames}
    others = [p for p in sweep.params if p != param]
    n = len(metrics)
    ncols = 2 if n > 1 else 1
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.4 * nrows), squeeze=False)
    values = sweep.frames[param]
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    numeric = is_numeric_dtype(values) and not is_bool_dtype(values)
    cats = sorted(values.unique(), key=str) if not numeric else None
    for ax, (metric, (label, unit, log)) in zip(axes.flat, metrics.items(), strict=False):
        stats_df = sweep_statistics(sweep, metric, [param, *others])
        groups = stats_df.groupby(others, sort=True) if others else [((), stats_df)]
        for j, (key, g) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            g = g.sort_values(param) if numeric else g.set_index(param).loc[
                [c for c in cats if c in set(g[param])]].reset_index()
            x = g[param].to_numpy(float) if numeric else np.array(
                [cats.index(c) for c in g[param]], float)
            if not numeric and len(groups) > 1:  # dodge categories so error bars do not overlap
                x = x + 0.08 * (j - (len(groups) - 1) / 2)
            err = np.vstack([g["mean"] - g["lo"], g["hi"] - g["mean"]])
            err = np.where(np.isfinite(err), err, 0.0)
            lab = ", ".join(f"{o}={v}" for o, v in zip(others, key, strict=True)) or "mean"
            ax.errorbar(x, g["mean"], yerr=err, marker="o", ms=4, capsize=3, lw=1, label=lab,
                        ls="-" if numeric else "none")  # categories: no lines between them
        if not numeric:
            ax.set_xticks(range(len(cats)), [str(c) for c in cats])
        elif len(np.unique(values)) <= 8:
            ax.set_xticks(np.unique(values.to_numpy(float)))
        finite = stats_df["mean"].to_numpy(float)
        finite = finite[np.isfinite(finite)]
        if log and finite.size and (finite > 0).all():
            ax.set_yscale("log")
        if numeric and len(np.unique(values)) > 2 and (values > 0).all() and \
                values.max() / max(values.min(), 1e-300) >= 50:
            ax.set_xscale("log")
        ax.set(xlabel=param, ylabel=f"{label} ({unit})")
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    _legend_outside(axes.flat[ncols - 1] if n > 1 else axes.flat[0], title="other swept fields"
                    if others else None)
    reps = int(sweep.frames.groupby(["point"]).run_id.nunique().max()) if len(sweep.frames) else 0
    name = sweep.spec.get("name") or Path(sweep.path).name
    fig.suptitle(f"Sweep {name}: metrics versus {param} (mean over {reps} replications, "
                 f"95 % confidence interval)")
    fig.tight_layout()
    return fig


def plot_sweep(sweep_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``sweep_<param>.png`` (every headline metric versus that swept field) for every
    swept field, and return the paths. ``out_dir`` defaults to ``SWEEP_DIR/plots``."""
    from netsim.sweep import load_sweep

    sweep = load_sweep(sweep_dir, tables=["frames"])
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    if not len(sweep.frames):
        raise ValueError(f"{sweep_dir}: no finished run to plot")
    return [_save(fig_sweep(sweep, p), out / f"sweep_{p.replace('.', '_')}.png")
            for p in sweep.params]


def plot_path(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Plot a run directory (``meta.json``) or a sweep folder (``sweep.json``)."""
    path = Path(path)
    if (path / "sweep.json").exists():
        return plot_sweep(path, out_dir)
    if (path / "meta.json").exists():
        return plot_run(path, out_dir)
    raise FileNotFoundError(f"{path} is neither a run directory (meta.json) nor a sweep folder "
                            "(sweep.json)")
