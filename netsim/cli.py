"""Command-line interface: ``netsim run | validate | sweep | plot``.

``python -m netsim ...`` is the same program.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from netsim.scenario.loader import (
    ScenarioError,
    load_scenario,
)

EXIT_OK, EXIT_ERROR, EXIT_INVALID = 0, 1, 2


def _load(args) -> object:
    overrides = list(args.set or [])
    if getattr(args, "seed", None) is not None:
        overrides.append(f"run.seed={args.seed}")
    if getattr(args, "frames", None) is not None:
        overrides += [f"run.frames={args.frames}", "run.duration_s=null"]
    if getattr(args, "duration", None) is not None:
        overrides += [f"run.duration_s={args.duration}", "run.frames=null"]
    return load_scenario(args.scenario, overrides)


def _print_problems(err: ScenarioError) -> None:
    print(f"error: {err.source} is not a valid scenario:", file=sys.stderr)
    for p in err.problems:
        print(f"  - {p}", file=sys.stderr)


def cmd_validate(args) -> int:
    try:
        scenario = _load(args)
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    from netsim.sim.methods import check_available

    problems = check_available(scenario)
    if problems:
        print(f"error: {args.scenario} is valid but cannot run in this build:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.scenario}: OK ({scenario.n_aps} APs, {scenario.n_users} users, "
          f"sync={scenario.sync.method}, sensing={scenario.sensing.method}, "
          f"beamforming={scenario.comm.beamforming}, power={scenario.comm.power})")
    return EXIT_OK


def _summary_table(run_dir: Path) -> str:
    from netsim.runs import load_run

    run = load_run(run_dir)
    f = run.frames
    meta = run.meta
    rows = [
        ("status", meta["status"]),
        ("frames", f"{len(f)}"),
        ("simulated time", f"{meta['sim_time_s']:.4g} s"),
        ("wall time", f"{meta['wall_s']:.3g} s"),
        ("real-time factor", f"{meta['sim_time_s'] / max(meta['wall_s'], 1e-12):.3g} sim s / wall s"),
    ]
    if len(f):
        rows += [
            ("sum rate (mean)", f"{f.sum_rate_bps_hz.mean():.3f} bit/s/Hz"),
            ("min user rate (mean)", f"{f.min_rate_bps_hz.mean():.3f} bit/s/Hz"),
            ("residual |TO| max", f"{f.residual_to_max_s.max():.3e} s"),
            ("residual |CFO| max", f"{f.residual_cfo_max_hz.max():.3e} Hz"),
            ("sensing RMSE (mean)", f"{f.sensing_rmse_m.mean():.3e} m"),
            ("sync overhead (mean)", f"{100 * f.overhead_fraction.mean():.2f} %"),
        ]
    rows.append(("events", ", ".join(f"{k}: {v}" for k, v in run.events.kind.value_counts().items())
                 or "none"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def cmd_run(args) -> int:
    try:
        scenario = _load(args)
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    from tqdm import tqdm

    from netsim.sim.engine import Simulation

    out = Path(args.out or scenario.run.output_dir)
    bar = None

    def on_frame(frame: int, t_s: float, record: dict) -> None:
        bar.update(1)
        rate = record["sum_rate_bps_hz"]
        bar.set_postfix_str(f"t={t_s:.3f} s, sum rate={rate:.2f} b/s/Hz", refresh=False)

    try:
        sim = Simulation(scenario, out, on_frame=on_frame)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    bar = tqdm(total=sim.expected_frames(), unit="frame", disable=args.quiet, file=sys.stderr,
               desc=scenario.name)
    try:
        sim.run()
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: partial run kept in {out}", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - reported, meta.json says failed
        bar.close()
        print(f"error: run failed ({type(err).__name__}: {err}); partial run kept in {out}",
              file=sys.stderr)
        return EXIT_ERROR
    bar.close()
    print(f"run directory: {out}")
    print(_summary_table(out))
    return EXIT_OK


def cmd_plot(args) -> int:
    from netsim.plots import plot_run

    paths = plot_run(args.run_dir, args.out)
    for p in paths:
        print(p)
    return EXIT_OK


def cmd_sweep(args) -> int:
    from netsim.sweep import run_sweep

    try:
        table = run_sweep(args.sweep, scheduler=args.scheduler, workers=args.workers, out=args.out)
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    print(table.to_string(index=False))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netsim", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def scenario_args(p):
        p.add_argument("scenario", help="scenario YAML file")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a field, e.g. --set sync.method=ml (repeatable)")

    p = sub.add_parser("run", help="run one simulation")
    scenario_args(p)
    p.add_argument("--out", help="run directory (default: run.output_dir of the scenario)")
    p.add_argument("--seed", type=int, help="root seed (overrides run.seed)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, help="number of frames")
    length.add_argument("--duration", type=float, help="simulated seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a scenario file")
    scenario_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plot", help="standard figures of a run directory as PNG")
    p.add_argument("run_dir")
    p.add_argument("--out", help="folder for the PNGs (default: RUN_DIR/plots)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("sweep", help="parameter grid x replications on Dask")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: cores)")
    p.add_argument("--out", help="sweep output folder (default: from the sweep file)")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The kernels multiply many small matrices: a multi-threaded BLAS only adds overhead there
    # (measured 2x slower on the UMi scenario with 2 threads). Must be set before numpy loads.
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
