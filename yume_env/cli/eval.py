"""`yume-env eval`: measure a learned world against the simulator; `yume-env eval train-probes`:
train the inverse-dynamics model and event classifier the evaluation judges with.

    yume-env eval --model DIR [--device cpu] [--episodes N] [--quick] [--measures memory] [--json out.json] [--report report.md]
    yume-env eval --model RUN --data DIR [--json out.json]       # against held-out recorded episodes
    yume-env eval train-probes --out DIR [--preset full|gpu|quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=["run", "train-probes"],
        help="run the evaluation (default) or train the probes",
    )
    parser.add_argument("--model", default=None, help="model folder (default: the shipped default world)")
    parser.add_argument(
        "--data",
        default=None,
        help="eval: recorded episodes (yume-env data record) to measure the world against (their "
        "held-out split) instead of the simulator",
    )
    parser.add_argument("--device", default="cpu", help="torch device for the model and probes (cpu, cuda, cuda:1)")
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="eval: worlds in the autoregressive rollout; train-probes: simulator episodes",
    )
    parser.add_argument("--quick", action="store_true", help="eval: few worlds and steps (indicative numbers)")
    parser.add_argument(
        "--horizons",
        type=int,
        nargs="+",
        default=None,
        help="eval: autoregressive steps to report (default 16 64 256; the rollouts run to the largest; "
        "with --data, the largest is the rollout length, default 16)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="eval: first world seed (default 1000000); train-probes: data and weights seed (default 0)",
    )
    parser.add_argument("--probes", default=None, help="eval: probe folder (default yume_env/assets/eval_models)")
    parser.add_argument("--json", default=None, help="eval: write the results as JSON here")
    parser.add_argument(
        "--measures",
        default=None,
        metavar="NAMES",
        help="eval: comma-separated groups to run, of rollout (fidelity, actions, Fréchet distance and "
        "sharpness), memory (loop closure, turn back), events, speed, script (Fréchet distance and "
        "sharpness under the action scripts), task (the task head's reached) (default: all); "
        "each keeps its figures",
    )
    parser.add_argument("--report", default="eval_report.md", help="eval: markdown report path (figures beside it)")
    parser.add_argument(
        "--sample-steps", type=int, default=None, help="eval: denoising steps per chunk (default: the world's)"
    )
    parser.add_argument(
        "--spread-gain-max",
        type=float,
        default=None,
        help="eval: cap on restoring a new chunk's spread to the last one's (1 = off; default: the world's)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--out",
        default=None,
        help="train-probes: output folder (required: the probes the package ships stay as they "
        "are; evaluate with yours by --probes DIR)",
    )
    parser.add_argument(
        "--preset",
        default="full",
        choices=["full", "gpu", "quick"],
        help="train-probes: data and step counts (gpu: more of both, for --device cuda)",
    )
    parser.add_argument("--steps", type=int, default=None, help="train-probes: steps per simulator episode")
    parser.add_argument(
        "--iterations", type=int, default=None, help="train-probes: optimiser steps; with --data: of its action probe"
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="train-probes: end the whole run (data included) within this many minutes, "
        "fitting the step count and schedule to it",
    )
    parser.add_argument(
        "--half",
        action="store_true",
        help="train-probes: store the weights as float16 (half the size; the shipped probes are)",
    )
    parser.add_argument("--sim-batch", type=int, default=None, help="train-probes: simulator worlds rendered at once")
    parser.add_argument("--init", default=None, help="train-probes: continue from the probes in this folder")
    parser.add_argument(
        "--data-cache",
        default=None,
        help="train-probes: .npz to save the rendered data to (or reuse it from, if it exists)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Evaluates a world or trains probes; a missing --out or missing probes print one line and return 2."""
    problem = _usage_problem(args)
    if problem:
        print(f"yume-env eval: error: {problem}", file=sys.stderr)
        return 2
    import torch

    if args.threads:
        torch.set_num_threads(int(args.threads))
    if args.action == "train-probes":
        return _train_probes(args)
    if args.data:
        return _evaluate_recorded(args)
    return _evaluate(args)


def _evaluate_recorded(args: argparse.Namespace) -> int:
    """`--data DIR`: the world against the held-out recorded episodes (`yume_env.eval.recorded`)."""
    from yume_env.atomic import atomic_write_text
    from yume_env.eval.recorded import RecordedEvalConfig, evaluate_recorded, markdown, plot_recorded_strip
    from yume_env.model import WorldModel

    if not args.model:
        raise ValueError("--data needs --model: the world trained on those recordings (yume-env train world --data)")
    model = WorldModel.from_pretrained(args.model, device=args.device)
    given = {
        "episodes": args.episodes,
        "seed": args.seed,
        "steps": max(args.horizons) if args.horizons else None,
        "probe_steps": args.iterations,
    }
    cfg = RecordedEvalConfig(**{k: v for k, v in given.items() if v is not None})
    results = evaluate_recorded(model, args.data, cfg, progress=not args.no_progress)
    report_path = Path(args.report)
    strip_png = report_path.with_name(f"{report_path.stem}_frames.png")
    plot_recorded_strip(results.pop("_strip"), strip_png)
    results["strip_png"] = strip_png.name
    report = markdown(results)
    atomic_write_text(report_path, report)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(results, indent=1))
    print(report)
    return 0


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments before any model loads, or None."""
    if args.action == "train-probes" and not args.out:
        return (
            "train-probes needs --out DIR (the probes the package ships are not overwritten); "
            "then evaluate with them by `yume-env eval --probes DIR`"
        )
    if args.action == "run" and args.probes is None and not args.quick and not args.data:
        from yume_env.eval.probes import default_probes_path

        if not (default_probes_path() / "probes.json").is_file():
            return (
                f"the probes the package ships are missing from {default_probes_path()} (an incomplete "
                "install?): reinstall yume-env, or train probes with `yume-env eval train-probes --out DIR` "
                "and pass --probes DIR"
            )
    return None


def _train_probes(args: argparse.Namespace) -> int:
    import torch

    from yume_env.eval.train_probes import ProbeTrainConfig, train_probes

    config = ProbeTrainConfig.preset(
        args.preset,
        device=args.device,
        **{
            k: v
            for k, v in (
                ("episodes", args.episodes),
                ("steps", args.steps),
                ("iterations", args.iterations),
                ("sim_batch", args.sim_batch),
                ("data_cache", args.data_cache),
                ("init", args.init),
                ("budget_minutes", args.budget_minutes),
                ("seed", args.seed),
            )
            if v is not None
        },
    )
    out = Path(args.out)
    probes = train_probes(
        config, out=out, progress=not args.no_progress, save_dtype=torch.float16 if args.half else torch.float32
    )
    held = probes.record["held_out"]
    print(f"probes written to {out}")
    print(
        f"held-out accuracy: keys {held['key_accuracy']:.3f}, camera {held['camera_accuracy']:.3f}, "
        f"events {held['event_accuracy']:.3f} ({held['transitions']} transitions, {held['event_frames']} event frames); "
        f"data {probes.record['data_seconds']} s, training {probes.record['train_seconds']} s"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from yume_env.env.world_config import configure_sampling
    from yume_env.eval import EvalConfig, Probes, default_probes_path, evaluate, write_json, write_report
    from yume_env.eval.train_probes import ProbeTrainConfig, train_probes
    from yume_env.model import WorldModel, default_world_path

    t0 = time.perf_counter()
    model_path = Path(args.model) if args.model else default_world_path()
    model = configure_sampling(
        WorldModel.from_pretrained(model_path, device=args.device), args.sample_steps, args.spread_gain_max
    )
    config = EvalConfig.preset(
        "quick" if args.quick else "full",
        episodes=args.episodes,
        horizons=tuple(args.horizons) if args.horizons else None,
        seed=args.seed,
        measures=tuple(args.measures.split(",")) if args.measures else None,
    )
    probes_path = Path(args.probes) if args.probes else default_probes_path()
    if (probes_path / "probes.json").is_file():
        probes = Probes.load(probes_path, device=args.device)
    elif args.quick:
        # No cached probes: quick mode trains small ones for this run only (never cached).
        print(
            f"no probes in {probes_path}; training quick probes for this run (train real ones with "
            "`yume-env eval train-probes --out DIR` and pass --probes DIR)",
            file=sys.stderr,
        )
        probes_path = Path(tempfile.mkdtemp(prefix="yume_eval_probes_"))
        probes = train_probes(
            ProbeTrainConfig.preset("quick", device=args.device), out=probes_path, progress=not args.no_progress
        ).to(args.device)
    else:
        print(f"no probes in {probes_path}; training them (preset full) and caching them there", file=sys.stderr)
        probes = train_probes(
            ProbeTrainConfig.preset("full", device=args.device), out=probes_path, progress=not args.no_progress
        ).to(args.device)
    results = evaluate(
        model,
        probes,
        config,
        model_name=_shown(model_path),
        probes_path=_shown(probes_path),
        progress=not args.no_progress,
    )
    results["seconds"]["with_loading"] = time.perf_counter() - t0
    report = write_report(results, args.report)
    print(f"report: {report}")
    if args.json:
        print(f"json: {write_json(results, args.json)}")
    width = max(len(r["description"]) for r in results["targets"])
    for row in results["targets"]:
        mark = "n/a " if row["pass"] is None else ("pass" if row["pass"] else "FAIL")
        value = "n/a" if row["value"] is None else f"{row['value']:.3f}"
        print(f"  {mark}  {row['description']:<{width}}  {value:>9} {row['op']} {row['target']:g}")
    print(json.dumps({"total_seconds": round(results["seconds"]["total"], 1)}))
    return 0


def _shown(path) -> str:
    """A path as a report shows it: relative to the working directory when inside it (a report
    committed to a repository then names no one's home folder)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
