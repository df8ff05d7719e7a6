"""Command-line interface: ``netsim run | validate | defaults | sweep | plot | train-gnn``.

``python -m netsim ...`` is the same program.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from netsim.allocator import MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES, tune_allocator  # noqa: F401 - public here too
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
    from netsim.scenario.checks import algorithm_summary, cost_warnings

    print(f"{args.scenario}: OK ({scenario.n_aps} APs, {scenario.n_users} users, "
          f"sync={scenario.sync.method}, sensing={scenario.sensing.method}, "
          f"beamforming={scenario.comm.beamforming}, power={scenario.comm.power})")
    for line in algorithm_summary(scenario):
        print(f"  {line}")
    for line in cost_warnings(scenario):
        print(f"  warning: {line}")
    return EXIT_OK


def _out_dir_problem(out: Path) -> str | None:
    """Why ``out`` cannot hold a run directory (None: it can)."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"--out {out}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"--out {out}: {parent} is not writable"
    return None


def _summary_table(run_dir: Path) -> str:
    from netsim.runs import load_run
    from netsim.summary import format_summary, run_summary

    return format_summary(run_summary(load_run(run_dir)))


def cmd_defaults(args) -> int:
    """Print a resolved scenario (every default filled in) as YAML."""
    from netsim.scenario.loader import parse_scenario, scenario_to_yaml

    try:
        if args.scenario:
            scenario = load_scenario(args.scenario, list(args.set or []))
        else:
            from netsim.scenario.loader import apply_overrides

            scenario = parse_scenario(apply_overrides({}, list(args.set or [])), "--set")
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    sys.stdout.write(scenario_to_yaml(scenario))
    return EXIT_OK


def cmd_run(args) -> int:
    if args.resume is not None:
        given = [opt for opt, val in (("SCENARIO", args.scenario), ("--set", args.set),
                                      ("--seed", args.seed), ("--frames", args.frames),
                                      ("--duration", args.duration), ("--out", args.out),
                                      ("--overwrite", args.overwrite)) if val]
        if given:
            print(f"error: --resume continues a run as it was configured; drop {', '.join(given)}",
                  file=sys.stderr)
            return EXIT_INVALID
        return _resume(args)
    if args.scenario is None:
        print("error: netsim run needs a SCENARIO file (or --resume DIR)", file=sys.stderr)
        return EXIT_INVALID
    try:
        scenario = _load(args)
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    from netsim.runs import RunDirError
    from netsim.sim.engine import Simulation

    out = Path(args.out or scenario.run.output_dir)
    progress = _Progress(args.quiet, scenario.name)
    problem = _out_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    try:
        sim = Simulation(scenario, out, on_frame=progress.on_frame, overwrite=args.overwrite)
    except RunDirError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as err:
        print(f"error: cannot create the run directory {out}: {err.strerror or err}",
              file=sys.stderr)
        return EXIT_INVALID
    return _run(sim, out, progress)


class _Progress:
    """tqdm progress bar fed by the engine's ``on_frame`` callback; none with ``--quiet`` or
    when stderr is not a terminal (logs, pipes), and then tqdm is not even imported."""

    def __init__(self, quiet: bool, name: str) -> None:
        self.quiet, self.name, self.bar = quiet, name, None

    def open(self, total: int, done: int) -> None:
        if self.quiet or not sys.stderr.isatty():
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit="frame", file=sys.stderr, desc=self.name)

    def on_frame(self, frame: int, t_s: float, record: dict) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        rate = record["sum_rate_bps_hz"]
        self.bar.set_postfix_str(f"t={t_s:.3f} s, sum rate={rate:.2f} b/s/Hz", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(sim, out: Path, progress: _Progress) -> int:
    import signal

    from netsim.sim.engine import RunInterrupted

    progress.open(sim.expected_frames(), sim.frame)
    try:
        sim.run()
    except RunInterrupted as err:
        progress.close()
        print(f"interrupted ({err}); {sim.frame} frame(s) kept in {out}; continue with "
              f"netsim run --resume {out}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        progress.close()
        print(f"interrupted: partial run kept in {out}; continue with netsim run --resume {out}",
              file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as err:  # noqa: BLE001 - reported, meta.json says failed
        progress.close()
        print(f"error: run failed ({type(err).__name__}: {err}); partial run kept in {out}",
              file=sys.stderr)
        return EXIT_ERROR
    progress.close()
    print(f"run directory: {out}")
    print(_summary_table(out))
    return EXIT_OK


def _resume(args) -> int:
    from netsim.runs import RunDirError, read_run_meta
    from netsim.sim.engine import Simulation

    out = Path(args.resume)
    try:
        meta = read_run_meta(out)
        if meta.get("status") == "finished":
            print(f"{out}: the run already finished ({meta.get('frames')} frames); nothing to resume")
            print(_summary_table(out))
            return EXIT_OK
        progress = _Progress(args.quiet, meta.get("scenario_name", "resume"))
        sim = Simulation.resume(out, on_frame=progress.on_frame)
    except RunDirError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    print(f"resuming {out} at frame {sim.frame} (t = {sim.env.now:.6g} s)", file=sys.stderr)
    return _run(sim, out, progress)


def cmd_plot(args) -> int:
    from netsim.plots import plot_path

    try:
        paths = plot_path(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    for p in paths:
        print(p)
    return EXIT_OK


def cmd_sweep(args) -> int:
    from netsim.sweep import SweepError, run_sweep

    try:
        result = run_sweep(args.sweep, scheduler=args.scheduler, workers=args.workers,
                           out=args.out, progress=not args.quiet, extra_set=args.set,
                           replications=args.replications)
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    except SweepError as err:
        print(f"error: {err.source}: the sweep cannot start:", file=sys.stderr)
        for p in err.problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_INVALID
    table = result.summary
    cols = [c for c in ["run_id", *result.params, "replication", "status", "frames",
                        "sum_rate_bps_hz", "residual_to_rms_s", "error"] if c in table]
    print(table[cols].to_string(index=False))
    print(f"sweep folder: {result.out_dir} ({len(table)} runs: "
          f"{int((table.status == 'finished').sum())} run, {result.n_skipped} skipped, "
          f"{result.n_failed} failed; load with netsim.load_sweep)")
    if result.n_failed:
        print(f"error: {result.n_failed} run(s) failed; see the error column and "
              f"{result.out_dir / 'summary.csv'}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def cmd_train_gnn(args) -> int:
    """Train a seed-004 GNN on drops of a scenario's deployment (needs ``netsim[gnn]``)."""
    import json

    try:
        from netsim.learn.train import TrainConfig, train, variant
    except ImportError as exc:
        print(f"error: train-gnn needs torch (pip install 'netsim[gnn]'): {exc}", file=sys.stderr)
        return EXIT_ERROR
    from netsim.comm.power.gnn import save_gnn_weights
    from netsim.learn.data import DropSpec

    try:
        sc = _load(args)
    except ScenarioError as err:
        _print_problems(err)
        return EXIT_INVALID
    try:
        spec = DropSpec.from_scenario(sc)
        cfg = variant(TrainConfig(framework=args.model, samples=args.samples, epochs=args.epochs,
                                  seed=args.seed if args.seed is not None else 0,
                                  batch=args.batch, patience=args.patience, lr=args.lr,
                                  time_budget_s=args.time_budget, init=args.init,
                                  power_err_var=args.err_var,
                                  n_ant_mix=tuple(int(x) for x in args.n_ant_mix.split(","))
                                  if args.n_ant_mix else ()), args.variant)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    log_file = open(args.log, "a") if args.log else None  # noqa: SIM115
    def log(row):
        if log_file is not None:
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
    try:
        weights, hist = train(spec, cfg, progress=not args.quiet, log=log)
    finally:
        if log_file is not None:
            log_file.close()
    save_gnn_weights(args.out, weights)
    tr = weights.meta["training"]
    print(f"{args.model} ({args.variant}) on {spec.name}: {tr['samples']} samples, "
          f"{tr['epochs_run']} epochs ({hist.stopped}), best validation net-SE "
          f"{tr['best_val_net_se']:.2f} bit/s/Hz at epoch {tr['best_epoch']}, "
          f"{tr['trainable_params']} parameters, {tr['cpu_s']:.0f} s CPU / {tr['wall_s']:.0f} s wall"
          f" -> {args.out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    import netsim

    parser = argparse.ArgumentParser(prog="netsim", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"netsim {netsim.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def scenario_args(p):
        p.add_argument("scenario", help="scenario YAML file")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a field, e.g. --set sync.method=ml (repeatable)")

    p = sub.add_parser("run", help="run one simulation (or continue one with --resume DIR)")
    p.add_argument("scenario", nargs="?", help="scenario YAML file (not with --resume)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field, e.g. --set sync.method=ml (repeatable)")
    p.add_argument("--out", help="run directory (default: run.output_dir of the scenario); a "
                   "folder that holds another run is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="clear the run directory first when it holds an earlier run")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the killed or interrupted run in DIR from its last checkpoint")
    p.add_argument("--seed", type=int, help="root seed (overrides run.seed)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, help="number of frames")
    length.add_argument("--duration", type=float, help="simulated seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a scenario file")
    scenario_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("defaults", help="print a resolved scenario (every default filled in)")
    p.add_argument("scenario", nargs="?", help="scenario YAML file (default: the schema's defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field")
    p.set_defaults(func=cmd_defaults)

    p = sub.add_parser("plot", help="standard figures of a run or sweep folder as PNG")
    p.add_argument("run_dir", metavar="RUN_DIR|SWEEP_DIR")
    p.add_argument("--out", help="folder for the PNGs (default: DIR/plots)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("sweep", help="parameter grid x replications on Dask")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: cores)")
    p.add_argument("--out", help="sweep output folder (default: the file's out, else runs/<stem>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field of every run, after the file's set (repeatable)")
    p.add_argument("--replications", type=int, help="replications per point (default: the file's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("train-gnn", help="train a seed-004 GNN (DTS or STS) on a scenario's drops")
    p.add_argument("--scenario", required=True, help="scenario YAML file (channel.model: umi)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a scenario field")
    p.add_argument("--model", choices=["dts", "sts"], required=True)
    p.add_argument("--samples", type=int, default=400, help="LSF drops (training + validation)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patience", type=int, default=8, help="early-stopping epochs")
    p.add_argument("--variant", default="agnn",
                   help="agnn (default), gnn (no attention), nofe (no random features), fix<tau_p>")
    p.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    p.add_argument("--n-ant-mix", metavar="N1,N2,...",
                   help="train on a mix of antenna counts (one drawn per batch), e.g. 2,4,8,16")
    p.add_argument("--init", metavar="FILE",
                   help="start from these weights (.npz, e.g. pre-trained heads); fine-tunes with "
                        "frozen batch norm")
    p.add_argument("--time-budget", type=float, default=None, help="stop after this many wall seconds")
    p.add_argument("--err-var", action="store_true",
                   help="DTS: the Power-GNN reads the estimation-error variance as a 5th edge feature "
                        "(with --init, added at zero weight)")
    p.add_argument("--log", help="append one JSON line per epoch to this file")
    p.add_argument("--out", required=True, help="weights file (.npz)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_gnn)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The kernels multiply many small matrices: a multi-threaded BLAS only adds overhead there
    # (measured 2x slower on the UMi scenario with 2 threads). Must be set before numpy loads.
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # The scenario models use no pydantic plugin; looking for them reads the entry points of
    # every installed distribution when the first model is built (~120 files here, about 1 %
    # of a short run's CPU time). A value set by the user is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    tune_allocator()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
