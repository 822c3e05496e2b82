"""The evaluation's outputs: a markdown report with PNG plots (matplotlib, Agg) and a JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from yume_env.actions import CAMERAS, KEYS
from yume_env.atomic import atomic_write
from yume_env.eval.config import MEASURES


def _clean(obj: Any) -> Any:
    """JSON-safe: drops "_" keys (arrays kept for figures), NaN/inf -> None, numpy -> python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def write_json(results: dict, path: str | Path) -> Path:
    path = Path(path)
    text = json.dumps(_clean(results), indent=2, ensure_ascii=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


REFERENCE_LABELS = {
    "copy_last_burn_in_frame": "copy the last burn-in frame",
    "other_world": "the simulator in another world",
    "other_worlds_mean_frame": "the other worlds' mean frame",
}
"""Report names of the reference predictors in `results["autoregressive"]["references"]` (fidelity.REFERENCES)."""

REFERENCE_COLORS = {"copy_last_burn_in_frame": "C7", "other_world": "C4", "other_worlds_mean_frame": "C5"}


def _references(ar: dict) -> list[tuple[str, str, dict]]:
    """(name, label, curves) of the reference predictors present (results written before them have none)."""
    refs = ar.get("references", {})
    return [(name, REFERENCE_LABELS[name], refs[name]) for name in REFERENCE_LABELS if name in refs]


def plot_autoregressive(ar: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    steps = np.arange(1, ar["steps"] + 1)
    axes[0].plot(steps, ar["psnr_curve"], color="C0", label="learned world")
    axes[1].plot(steps, ar["ssim_curve"], color="C3", label="learned world")
    refs = _references(ar)
    for name, label, curves in refs:  # thin dashed: what PSNR / SSIM read without the model
        style = dict(color=REFERENCE_COLORS[name], ls="--", lw=0.9, label=label)
        axes[0].plot(steps, curves["psnr_curve"], **style)
        axes[1].plot(steps, curves["ssim_curve"], **style)
    axes[0].axhline(24, color="C1", ls=":", lw=1, label="target @16: 24 dB")
    axes[0].axhline(18, color="C2", ls=":", lw=1, label="target @256: 18 dB")
    axes[0].set(xlabel="generated step", ylabel="PSNR (dB)", title="autoregressive PSNR vs simulator")
    axes[0].legend(fontsize=7)
    axes[1].set(xlabel="generated step", ylabel="SSIM", title="autoregressive SSIM vs simulator", ylim=(0, 1))
    if refs:
        axes[1].legend(fontsize=7)
    for ax in axes:
        if ar["steps"] > 32:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    _savefig(fig, path)


FIGURE_WORLDS = 8  # loop-closure worlds drawn (all are measured)
FIGURE_EPISODES_PER_EVENT = 2  # event episodes drawn per label (all are measured)


def _first_per_label(labels: list[str], k: int) -> list[int]:
    """Indices of the first `k` episodes of each label, in order."""
    seen: dict[str, int] = {}
    keep = []
    for i, label in enumerate(labels):
        if seen.get(label, 0) < k:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return keep


def plot_strip(rows: list[tuple[str, np.ndarray]], titles: list[str], path: Path) -> None:
    """Rows of frames (label, (N, H, W, 3)) with column titles."""
    plt = _plt()
    n = len(titles)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n + 0.6, 1.4 * len(rows)), squeeze=False)
    for r, (label, frames) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(frames[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    _savefig(fig, path)


def plot_confusion(af: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, name, labels in ((axes[0], "key", KEYS), (axes[1], "camera", CAMERAS)):
        m = np.asarray(af["model"][f"{name}_confusion"], dtype=float)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=45)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set(
            xlabel="read from generated frames",
            ylabel="simulator's effective action",
            title=f"{name}s: accuracy {af['model'][f'{name}_accuracy']:.2f}",
        )
    _savefig(fig, path)


def plot_events(ev: dict, path: Path) -> None:
    plt = _plt()
    names = ev["events"]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.4))
    bars = [("simulator", ev["sim"]["per_event"]), ("learned world", ev["model"]["per_event"])]
    if "kept" in ev["model"]:
        bars.append(("learned world, already in view", ev["model"]["kept"]["per_event"]))
    width = 0.8 / len(bars)
    for i, (label, rates) in enumerate(bars):
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, [rates[n] for n in names], width, label=label)
    ax.axhline(0.9, color="k", ls="--", lw=1, label="target 0.9")
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1.05), ylabel="episodes where it appears", title="event following")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(bars) + 1, frameon=False)
    _savefig(fig, path)


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else "n/a"
    return str(v)


def write_report(results: dict, path: str | Path) -> Path:
    """Writes `path` (markdown) and its figures in `<stem>_figures/` beside it: a section for each
    measure that ran (`EvalConfig.measures`)."""
    path = Path(path)
    fig_dir = path.parent / f"{path.stem}_figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    host = results.get("speed") or results.get("host") or {}
    lines = [f"# Evaluation of `{results['model']}` against YumeSim", ""]
    lines += [
        f"Device: {host.get('device')} ({host.get('torch_threads')} torch threads, {host.get('cpu_count')} CPUs)"
        f"{', ' + host['gpu'] if 'gpu' in host else ''}. Preset: {'quick' if results['config']['quick'] else 'full'}. "
        f"Frame size {results['frame_size'][0]}x{results['frame_size'][1]}, {results['frames_per_step']} frames per step"
        f"{_sampling(results.get('sampling'))}. "
        f"Total time {results['seconds']['total']:.0f} s.",
        "",
    ]
    if results["config"]["quick"]:
        lines += ["*Quick mode: few worlds; the numbers are indicative, not the shipped figures.*", ""]
    measures = results["config"].get("measures")
    if measures and len(measures) < len(MEASURES):
        lines += [f"*Only these measures ran: {', '.join(measures)}.*", ""]
    lines += ["## Targets", "", "| target | value | bound | pass |", "|---|---|---|---|"]
    for row in results["targets"]:
        mark = "n/a" if row["pass"] is None else ("pass" if row["pass"] else "**fail**")
        lines.append(f"| {row['description']} | {_fmt(row['value'])} | {row['op']} {row['target']:g} | {mark} |")
    lines += _probes_section(results)
    for key, section in (
        ("autoregressive", _fidelity_section),
        ("realism", _realism_section),
        ("task_reached", _task_section),
        ("action_following", _actions_section),
        ("loop_closure", _memory_section),
        ("event_following", _events_section),
        ("speed", _speed_section),
    ):
        if results.get(key) is not None:
            lines += section(results, fig_dir)
    text = "\n".join(lines)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def _probes_section(results: dict) -> list[str]:
    """What the probes read on the simulator's own frames (where the action or event measures ran)."""
    af, ev = results.get("action_following"), results.get("event_following")
    if af is None and ev is None:
        return []
    record = results["probes"]["record"].get("held_out", {})
    checks = []
    if af is not None:
        checks.append(f"keys {_fmt(af['sim']['key_accuracy'])}, camera {_fmt(af['sim']['camera_accuracy'])}")
    if ev is not None:
        checks.append(
            f"events recognised in {_fmt(ev['sim']['rate'])} of the simulator's episodes, false alarms "
            f"{_fmt(ev['sim']['false_alarm'])}"
        )
    return [
        "",
        "## The probes",
        "",
        f"Trained on simulator frames (`{results['probes']['path']}`; record: held-out key accuracy "
        f"{_fmt(record.get('key_accuracy'))}, camera {_fmt(record.get('camera_accuracy'))}, event "
        f"{_fmt(record.get('event_accuracy'))}). On this evaluation's simulator frames (worlds they never saw): "
        f"{'; '.join(checks)}. The action and event measures below mean something only where these are high.",
        "",
    ]


def _fidelity_section(results: dict, fig_dir: Path) -> list[str]:
    tf, ar, rel = results["teacher_forced"], results["autoregressive"], fig_dir.name
    plot_autoregressive(ar, fig_dir / "autoregressive.png")
    if "_frames" in ar:
        steps = ar["_frames"]["steps"]
        plot_strip(
            [("simulator", ar["_frames"]["sim"]), ("learned", ar["_frames"]["model"])],
            [f"step {s}" for s in steps],
            fig_dir / "rollout.png",
        )
    lines = [
        "## Fidelity",
        "",
        f"Teacher-forced next chunk (history: the last {tf['context_steps']} true steps; {tf['predictions']} "
        f"predictions): PSNR {_fmt(tf['psnr'])} dB, SSIM {_fmt(tf['ssim'], 3)}.",
        "",
        f"Autoregressive ({ar['episodes']} worlds, {ar['steps']} steps after a burn-in of "
        f"{results['config']['burn_in']} simulator steps, random sticky actions):",
        "",
        "| step | PSNR (dB) | SSIM | mean PSNR to step | mean SSIM to step |",
        "|---|---|---|---|---|",
    ]
    for h in results["config"]["horizons"]:
        if f"psnr@{h}" in ar:
            lines.append(
                f"| {h} | {_fmt(ar[f'psnr@{h}'])} | {_fmt(ar[f'ssim@{h}'], 3)} | "
                f"{_fmt(ar[f'psnr_mean_to@{h}'])} | {_fmt(ar[f'ssim_mean_to@{h}'], 3)} |"
            )
    lines += _reference_table(ar, results["config"]["horizons"])
    lines += ["", f"![autoregressive]({rel}/autoregressive.png)", ""]
    if "_frames" in ar:
        lines += [f"![rollout]({rel}/rollout.png)", ""]
    return lines


def _actions_section(results: dict, fig_dir: Path) -> list[str]:
    af = results["action_following"]
    plot_confusion(af, fig_dir / "action_confusion.png")
    lines = [
        "## Action following",
        "",
        f"The inverse-dynamics probe reads (key, camera) from the frame before and after each step; truth is "
        f"the simulator's effective action ({af['transitions']} steps; commanded = effective in "
        f"{_fmt(af['commanded_equals_effective'])} of them).",
        "",
        "| frames | keys | camera | both |",
        "|---|---|---|---|",
    ]
    for side, label in (("sim", "simulator (probe check)"), ("model", "learned world")):
        lines.append(
            f"| {label} | {_fmt(af[side]['key_accuracy'])} | {_fmt(af[side]['camera_accuracy'])} | "
            f"{_fmt(af[side]['action_accuracy'])} |"
        )
    return lines + ["", f"![confusion]({fig_dir.name}/action_confusion.png)", ""]


def _memory_section(results: dict, fig_dir: Path) -> list[str]:
    lc = results["loop_closure"]
    views = lc["_views"]
    plot_strip(
        [
            (f"seed {s}", np.stack([views[k][i] for k in ("start", "sim", "memory_on", "memory_off")]))
            for i, s in enumerate(lc["seeds"][:FIGURE_WORLDS])
        ],
        ["start view", "simulator return", "memory on", "memory off"],
        fig_dir / "loop_closure.png",
    )
    lines = [
        "## Loop closure",
        "",
        f"Walk {lc['walk']} steps (W), turn {lc['turn']} steps (→), walk back, turn back; PSNR of the return "
        f"view against the start view ({lc['episodes']} worlds; seeds where a wall blocked the simulator's own "
        f"loop skipped: {lc['skipped_seeds']}). Memory off: the world is rebuilt from its last chunk after every step.",
        "",
        "| | PSNR (dB) | SSIM |",
        "|---|---|---|",
    ]
    for name, label in (
        ("sim", "simulator"),
        ("memory_on", "learned, memory on"),
        ("memory_off", "learned, memory off"),
    ):
        lines.append(f"| {label} | {_fmt(lc[f'{name}_psnr'])} | {_fmt(lc[f'{name}_ssim'], 3)} |")
    return lines + [
        "",
        f"Gap to the simulator: {_fmt(lc['gap_to_sim_db'])} dB; gain of memory: "
        f"{_fmt(lc['gain_over_memory_off_db'])} dB{_stderr(lc.get('gain_stderr_db'))}. "
        "(PSNR is capped at 60 dB, identical views.)",
        "",
        *_turn_back_table(lc.get("turn_back")),
        f"![loop closure]({fig_dir.name}/loop_closure.png)",
        "",
    ]


def _events_section(results: dict, fig_dir: Path) -> list[str]:
    ev, rel = results["event_following"], fig_dir.name
    plot_events(ev, fig_dir / "events.png")
    shown = _first_per_label(ev["labels"], FIGURE_EPISODES_PER_EVENT)
    plot_strip(
        [("simulator", ev["_views"]["sim"][shown]), ("learned", ev["_views"]["model"][shown])],
        [ev["labels"][i] for i in shown],
        fig_dir / "event_frames.png",
    )
    lines = [
        "## Event following",
        "",
        f"Prompt the event after the burn-in, stand still {ev['steps']} steps, classify the frames of the last "
        f"{ev['judged_steps']} steps ({ev['episodes_per_event']} episodes per event). Kept: the world starts "
        f"from frames that already show the event (it began in the simulator before the burn-in ended) and "
        f"stands still as long; does the event stay?",
        "",
        "| event | simulator | learned world | learned world, kept |",
        "|---|---|---|---|",
    ]
    kept = ev["model"].get("kept", {"rate": None, "per_event": {}})
    for n in ev["events"]:
        lines.append(
            f"| {n} | {_fmt(ev['sim']['per_event'][n])} | {_fmt(ev['model']['per_event'][n])} | "
            f"{_fmt(kept['per_event'].get(n))} |"
        )
    return lines + [
        f"| **all** | {_fmt(ev['sim']['rate'])} | {_fmt(ev['model']['rate'])} | {_fmt(kept['rate'])} |",
        f"| false alarm (no prompt) | {_fmt(ev['sim']['false_alarm'])} | {_fmt(ev['model']['false_alarm'])} | |",
        "",
        f"![events]({rel}/events.png)",
        "",
        f"![event frames]({rel}/event_frames.png)",
        "",
    ]


def _speed_section(results: dict, fig_dir: Path) -> list[str]:
    sp = results["speed"]
    lines = ["## Speed", "", "| worlds | median step (s) | steps/s per world | world-steps/s |", "|---|---|---|---|"]
    for key in ("single", "batched"):
        s = sp[key]
        lines.append(
            f"| {s['worlds']} | {s['median_step_s']:.4f} | {s['steps_per_s']:.1f} | {s['world_steps_per_s']:.1f} |"
        )
    parts = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sp["single"]["parts_median_s"].items())
    return lines + [
        "",
        f"One world, median per part: {parts}. Warm-up steps (dropped): "
        f"{', '.join(f'{t:.3f}' for t in sp['single']['warmup_s'])} s.",
        "",
    ]


REALISM_ROWS = (
    ("world", "**learned world**"),
    ("other_world", "the simulator in other worlds (floor)"),
    ("mean_frame", "the other worlds' mean frame"),
)
REALISM_ACTIONS = {
    "random": "random sticky actions (the autoregressive rollout)",
    "scripted": "the action scripts: the loop (W x 6, → x 18, twice), then a turn back of 8, repeated",
}


def plot_sharpness(realism: dict, path: Path) -> None:
    """Sharpness per step (generated over simulator) under each action set, with the other worlds'."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for i, acts in enumerate(a for a in REALISM_ACTIONS if a in realism):
        curve = realism[acts]["sharpness_curve"]
        steps = np.arange(1, len(curve) + 1)
        ax.plot(steps, curve, color=f"C{i}", label=f"learned world, {acts} actions")
        ax.plot(
            steps,
            realism[acts]["sharpness_curve_other_world"],
            color=f"C{i}",
            ls="--",
            lw=0.9,
            label=f"other worlds, {acts} actions",
        )
    ax.axhline(0.8, color="k", ls=":", lw=1, label="target from step 64: 0.8")
    ax.set(xlabel="generated step", ylabel="Laplacian energy / simulator's", title="sharpness", ylim=(0, None))
    if len(realism["random" if "random" in realism else "scripted"]["sharpness_curve"]) > 32:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _savefig(fig, path)


def _realism_section(results: dict, fig_dir: Path) -> list[str]:
    re_ = results["realism"]
    kinds = [a for a in REALISM_ACTIONS if a in re_]
    if not kinds:
        return []
    feat = re_["features"]
    lines = [
        "## Realism: Fréchet distance and sharpness",
        "",
        "Measures that blur cannot fool. Fréchet distance (FID-style, lower is closer) between Gaussian fits of "
        f"the features of generated and simulator frames: the {feat['network']} ({feat['width']} units, trained on "
        f"simulator frames only), projected to {feat['dim']} dimensions ({feat['projection']}); the last frame of "
        "each step. Sharpness: the Laplacian energy of the luminance over the simulator's at the same steps, "
        f"every frame (1.0 = as sharp). At step h both read the {re_[kinds[0]]['window_steps']} steps that end at "
        "h, in every world. References against the same simulator frames: the simulator in other worlds under "
        "the same actions (the floor) and their constant mean frame (which beats the world on PSNR).",
        "",
    ]
    for acts in kinds:
        lines += _realism_table(re_[acts], REALISM_ACTIONS[acts])
    plot_sharpness(re_, fig_dir / "sharpness.png")
    lines += [f"![sharpness]({fig_dir.name}/sharpness.png)", ""]
    if "scripted" in re_ and "_frames" in re_["scripted"]:
        shown = re_["scripted"]["_frames"]
        plot_strip(
            [("simulator", shown["sim"]), ("learned", shown["model"])],
            [f"step {s}" for s in shown["steps"]],
            fig_dir / "scripted_rollout.png",
        )
        lines += ["Under the action scripts:", "", f"![scripted rollout]({fig_dir.name}/scripted_rollout.png)", ""]
    return lines


def _realism_table(r: dict, label: str) -> list[str]:
    """Markdown lines: Fréchet distance and sharpness of the world and the references at each horizon."""
    shown = [int(h) for h in r["windows"]]
    frames = ", ".join(f"{r['frames_per_window'][str(h)]} at {h}" for h in shown)
    lines = [
        f"Under {label}: {r['episodes']} worlds; frames per window: {frames}.",
        "",
        "| | " + " | ".join(f"Fréchet@{h}" for h in shown) + " | " + " | ".join(f"sharpness@{h}" for h in shown) + " |",
        "|---|" + "---|" * (2 * len(shown)),
    ]
    for side, name in REALISM_ROWS:
        row = r[side]
        lines.append(
            f"| {name} | "
            + " | ".join(_fmt(row.get(f"frechet@{h}")) for h in shown)
            + " | "
            + " | ".join(_fmt(row.get(f"sharpness@{h}"), 3) for h in shown)
            + " |"
        )
    lines.append(
        "| learned world / floor | "
        + " | ".join(_fmt(r.get(f"frechet_over_floor@{h}")) for h in shown)
        + " |"
        + " |" * len(shown)
    )
    return lines + [""]


def _task_section(results: dict, fig_dir: Path) -> list[str]:
    tr = results["task_reached"]
    lines = [
        "## Task head: reached",
        "",
        f"{tr['episodes']} worlds start after {tr['burn_in']} steps of the beacon seeker; then, for {tr['steps']} "
        f"steps, {tr['seeking']} keep seeking (actions chosen from the simulator's state) and {tr['walking']} walk "
        "at random, the world taking the same actions as its simulator. Truth is the simulator's: within its "
        f"reach radius after the step ({tr['steps_reached']} steps of {tr['episodes'] * tr['steps']}, in "
        f"{tr['episodes_reached']} worlds). The head reads the world's generated latents.",
        "",
        "| rule | worlds | precision | recall | steps called reached | worlds called early |",
        "|---|---|---|---|---|---|",
    ]
    rules = (
        ("head", "head: reached logit > 0"),
        ("env_rule", f"env: logit > 0 and predicted distance < {tr['arrive_distance_m']:g} m"),
    )
    for key, label in rules:
        for worlds, r in (("all", tr[key]), *((p, tr["by_policy"][p][key]) for p in ("seek", "walk"))):
            lines.append(
                f"| {label} | {worlds} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | {r['called']} | "
                f"{r['episodes_early']} |"
            )
    return lines + [
        "",
        "Early: the head called reached before the simulator first got there (or in a world that "
        f"never did). Predicted distance error (mean, against the simulator's): {_fmt(tr['distance_mae_m'])} m.",
        "",
    ]


def _reference_table(ar: dict, horizons: list[int]) -> list[str]:
    """Markdown lines: the learned world against the reference predictors at each horizon reached."""
    refs = _references(ar)
    shown = [h for h in horizons if f"psnr@{h}" in ar]
    if not refs or not shown:
        return []
    lines = [
        "",
        "Reference predictors, scored the same way with the simulator only (no model):",
        "",
        "| predictor | " + " | ".join(f"PSNR@{h} (dB) | SSIM@{h}" for h in shown) + " |",
        "|---|" + "---|---|" * len(shown),
    ]
    for label, row in [("**learned world**", ar), *((label, curves) for _, label, curves in refs)]:
        lines.append(
            f"| {label} | "
            + " | ".join(f"{_fmt(row.get(f'psnr@{h}'))} | {_fmt(row.get(f'ssim@{h}'), 3)}" for h in shown)
            + " |"
        )
    lines += [
        "",
        "The other world is the same simulator in a different world under the same actions: a world that "
        "draws a plausible but different street scores about that row. PSNR at long horizons rewards blur, "
        "as the constant mean frame shows.",
    ]
    return lines


def _turn_back_table(tb: dict | None) -> list[str]:
    """Markdown lines for the turn-back measure (none for results written before it)."""
    if not tb or not tb.get("turns"):
        return []
    lines = [
        f"Turn back: turn k steps right and k back, standing still ({tb['episodes']} worlds); the return view "
        "against the start view. How many steps back the memory still recalls what it saw:",
        "",
        "| k | memory on (dB) | memory off (dB) | gain (dB) |",
        "|---|---|---|---|",
    ]
    for k, row in tb["turns"].items():
        lines.append(
            f"| {k} | {_fmt(row['memory_on_psnr'])} | {_fmt(row['memory_off_psnr'])} | "
            f"{_fmt(row['gain_db'])}{_stderr(row.get('gain_stderr_db'), short=True)} |"
        )
    return lines + [""]


def _stderr(value: float | None, short: bool = False) -> str:
    """ " ± 0.84 (standard error over worlds)", or "" where there is none (one world, older results)."""
    return "" if value is None else f" ± {_fmt(value)}" + ("" if short else " (standard error over worlds)")


def _sampling(sampling: dict | None) -> str:
    """ ", 1 denoising step per chunk, spread kept (gain <= 1.5)" for the report's first line."""
    if not sampling:  # results written before the field existed
        return ""
    n, gain = sampling["sample_steps"], sampling["spread_gain_max"]
    kept = f", spread kept (gain <= {gain:g})" if gain > 1 else ", spread not rescaled"
    return f", {n} denoising step{'s' if n != 1 else ''} per chunk{kept}"
