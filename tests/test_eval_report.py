"""`yume-env eval` end to end on a random tiny world: every measure runs, the report and the JSON
carry every metric and target."""

import hashlib
import json

import numpy as np
import pytest
import torch

from yume_env.eval import EvalConfig, Probes, evaluate, write_json, write_report
from yume_env.eval.targets import TARGETS
from yume_env.model import WorldModel, WorldModelConfig
from yume_env.model.task_head import TaskHead
from yume_env.model.text import TextEmbedding, TextEncoder
from yume_env.model.text_cache import TextConditioner

sim = pytest.importorskip("yume_env.sim")


class HashMiniLM(TextEncoder):
    """Stands in for MiniLM (same name and width): a distinct fixed vector per text, no transformers."""

    name, model_id, tokens_per_text, dim = "minilm", "sentence-transformers/all-MiniLM-L6-v2", 1, 384

    def encode(self, texts):
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
        emb = torch.stack([torch.randn(1, 384, generator=torch.Generator().manual_seed(s)) for s in seeds])
        return TextEmbedding(emb, torch.ones(len(texts), 1, dtype=torch.bool))


EVENT_TEXTS = [t for texts in sim.EVENTS.values() for t in texts]

SMALL = dict(
    episodes=2,
    burn_in=2,
    horizons=(1, 3),
    tf_points=2,
    tf_context=2,
    loop_episodes=1,
    loop_walk=1,
    turn_back_episodes=2,
    turn_back_steps=(1, 2),
    event_episodes=1,
    events=("snow",),
    event_steps=2,
    event_judge=1,
    speed_steps=2,
    speed_warmup=1,
    speed_batch=2,
    realism_window=2,
    script_episodes=2,
    task_episodes=2,
    task_steps=3,
)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    text = TextConditioner.build(HashMiniLM(), events=EVENT_TEXTS)
    model = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0, text=text)
    torch.manual_seed(0)
    model.task_head = TaskHead(model.config.latent_channels, model.config.latent_hw).eval()  # random, as the world
    path = tmp_path_factory.mktemp("world") / "tiny"
    model.save_pretrained(path)  # the event texts are in its text cache: loading never needs MiniLM
    return model, path


@pytest.fixture(scope="module")
def probes_dir(tmp_path_factory):
    # Untrained probes: this file checks the plumbing; tests/test_eval_probes.py checks the training.
    path = tmp_path_factory.mktemp("probes")
    Probes.create(["none", *sim.EVENTS]).save(path)
    return path


@pytest.fixture(scope="module")
def results(tiny_world, probes_dir):
    model, _ = tiny_world
    return evaluate(model, Probes.load(probes_dir), EvalConfig(**SMALL), model_name="tiny", progress=False)


def test_every_measure_reports_finite_numbers(results):
    m = results["metrics"]
    for key in (
        "teacher_forced_psnr",
        "ar_psnr@1",
        "ar_psnr@3",
        "ar_ssim@3",
        "idm_key_accuracy",
        "idm_camera_accuracy",
        "idm_sim_key_accuracy",
        "loop_sim_psnr",
        "loop_memory_on_psnr",
        "loop_memory_off_psnr",
        "loop_gap_to_sim_db",
        "loop_gain_over_memory_off_db",
        "event_rate",
        "event_sim_rate",
        "event_kept_rate",
        "steps_per_s",
    ):
        assert key in m and m[key] is not None and np.isfinite(m[key]), (key, m.get(key))
    assert len(results["autoregressive"]["psnr_curve"]) == 3


def test_targets_not_measured_are_marked_not_applicable(results):
    rows = {r["name"]: r for r in results["targets"]}
    assert set(rows) == {t[0] for t in TARGETS}
    assert rows["ar_psnr@256"]["value"] is None and rows["ar_psnr@256"]["pass"] is None  # horizon 3 only
    assert rows["teacher_forced_psnr"]["pass"] in (True, False)


def test_report_and_json_hold_every_metric_and_figure(results, tmp_path):
    report = write_report(results, tmp_path / "report.md")
    data = json.loads(write_json(results, tmp_path / "eval.json").read_text())
    text = report.read_text()
    for row in TARGETS:
        assert row[4] in text
    figures = sorted(p.name for p in (tmp_path / "report_figures").glob("*.png"))
    assert figures == [
        "action_confusion.png",
        "autoregressive.png",
        "event_frames.png",
        "events.png",
        "loop_closure.png",
        "rollout.png",
        "scripted_rollout.png",
        "sharpness.png",
    ]
    for name in figures:
        assert f"report_figures/{name}" in text
    assert set(data["metrics"]) == set(results["metrics"])
    assert {
        "teacher_forced",
        "autoregressive",
        "action_following",
        "loop_closure",
        "event_following",
        "speed",
        "realism",
        "task_reached",
        "targets",
        "probes",
        "config",
    } <= set(data)
    assert "_views" not in data["loop_closure"] and "_frames" not in data["realism"]["scripted"]
    assert "| learned world, kept |" in text and set(data["event_following"]["model"]["kept"]["per_event"]) == {"snow"}


def test_the_kept_measure_starts_from_frames_that_show_the_event():
    from yume_env.eval.event_following import carry_event
    from yume_env.eval.rollout import burn_in

    class Size:  # what burn_in reads from a model
        frame_size, frames_per_step = (32, 32), 2

    start = burn_in(Size(), [5, 6], 1, np.random.default_rng(0))
    plain = burn_in(Size(), [5, 6], 1, np.random.default_rng(0))
    carried = carry_event(start, ["it starts to snow", "night falls"], 2)
    assert carried.frames.shape == (2, 1 + 3 * 2, 32, 32, 3) and carried.actions.shape == (2, 3, 2)
    assert [s.event for s in carried.sims] == ["it starts to snow", "night falls"]
    assert np.array_equal(carried.frames[:, :3], plain.frames)  # the burn-in itself is unchanged
    night = carried.frames[1, -1].astype(float).mean()
    assert night < 0.6 * plain.frames[1, -1].astype(float).mean()  # night has fallen in the last frame


def test_memory_off_world_differs_from_memory_on(results):
    lc = results["loop_closure"]
    assert lc["memory_on_psnr"] != lc["memory_off_psnr"]


@pytest.mark.slow
def test_cli_quick_eval_writes_report_and_json(tiny_world, probes_dir, tmp_path):
    from yume_env.cli import main

    _, path = tiny_world
    out = tmp_path / "eval.json"
    code = main(
        [
            "eval",
            "--model",
            str(path),
            "--quick",
            "--horizons",
            "2",
            "--probes",
            str(probes_dir),
            "--json",
            str(out),
            "--report",
            str(tmp_path / "r.md"),
            "--no-progress",
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert data["config"]["quick"] is True and data["metrics"]["ar_psnr@2"] is not None
    assert (tmp_path / "r.md").is_file()


@pytest.mark.slow
def test_loop_closure_reports_each_worlds_gain_and_its_standard_error(tiny_world, results):
    from yume_env.eval.loop_closure import loop_closure

    one = results["loop_closure"]
    assert len(one["gain_per_world_db"]) == 1 and one["gain_stderr_db"] is None  # one world: no spread to state
    model, _ = tiny_world
    lc = loop_closure(
        model,
        episodes=3,
        walk=1,
        turn=18,
        burn=1,
        tries=8,
        seed=1_100_000,
        rng=np.random.default_rng(0),
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    gains = np.array(lc["gain_per_world_db"])
    assert lc["episodes"] == 3 and gains.shape == (3,)
    assert np.mean(gains) == pytest.approx(lc["gain_over_memory_off_db"], abs=1e-4)
    assert lc["gain_stderr_db"] == pytest.approx(np.std(gains, ddof=1) / np.sqrt(3), rel=1e-6)


@pytest.mark.slow
def test_more_loop_worlds_leave_the_other_measures_unchanged(tiny_world, probes_dir, results):
    """Each measure has its own action and noise streams: adding loop worlds changes only the loop."""
    model, _ = tiny_world
    more = evaluate(model, Probes.load(probes_dir), EvalConfig(**{**SMALL, "loop_episodes": 2}), progress=False)
    assert more["loop_closure"]["episodes"] == 2
    assert more["event_following"]["model"] == results["event_following"]["model"]
    assert more["autoregressive"]["psnr_curve"] == results["autoregressive"]["psnr_curve"]
    assert more["teacher_forced"] == results["teacher_forced"]


def test_turn_back_reports_memory_on_and_off_for_each_turn(results, tmp_path):
    tb = results["loop_closure"]["turn_back"]
    assert tb["episodes"] == 2 and list(tb["turns"]) == ["1", "2"]
    for row in tb["turns"].values():
        assert row["gain_db"] == pytest.approx(row["memory_on_psnr"] - row["memory_off_psnr"], abs=1e-4)
        assert row["gain_stderr_db"] is not None and np.isfinite(row["gain_stderr_db"])
    assert row["memory_on_psnr"] != row["memory_off_psnr"]
    text = write_report(results, tmp_path / "report.md").read_text()
    assert "Turn back: turn k steps right and k back" in text and "| 2 |" in text


def test_eval_config_names_bad_counts():
    with pytest.raises(ValueError, match="turn_back_steps must be positive"):
        EvalConfig(turn_back_steps=(0, 2))
    with pytest.raises(ValueError, match=r"EvalConfig.loop_episodes must be >= 1"):
        EvalConfig(loop_episodes=0)
    with pytest.raises(ValueError, match="unknown eval preset"):
        EvalConfig.preset("huge")
    assert EvalConfig.preset("quick").turn_back_steps == (2, 8)


@pytest.mark.slow
def test_one_group_of_measures_runs_alone_with_the_same_figures(tiny_world, probes_dir, results, tmp_path):
    from yume_env.cli import main

    model, path = tiny_world
    memory = evaluate(model, Probes.load(probes_dir), EvalConfig(**SMALL, measures=("memory",)), progress=False)
    assert "loop_closure" in memory and not {"autoregressive", "event_following", "speed"} & set(memory)
    assert memory["loop_closure"]["memory_on_psnr"] == results["loop_closure"]["memory_on_psnr"]
    assert memory["loop_closure"]["turn_back"]["turns"] == results["loop_closure"]["turn_back"]["turns"]
    rows = {row["name"]: row for row in memory["targets"]}
    assert rows["loop_gain_over_memory_off_db"]["pass"] is not None and rows["event_rate"]["pass"] is None
    text = write_report(memory, tmp_path / "memory.md").read_text()
    assert "## Loop closure" in text and "## Fidelity" not in text and "Only these measures ran: memory" in text
    out = tmp_path / "m.json"
    assert (
        main(
            [
                "eval",
                "--model",
                str(path),
                "--quick",
                "--measures",
                "memory,speed",
                "--probes",
                str(probes_dir),
                "--json",
                str(out),
                "--report",
                str(tmp_path / "m.md"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert set(json.loads(out.read_text())["config"]["measures"]) == {"memory", "speed"}
    with pytest.raises(ValueError, match="choose from"):
        EvalConfig(measures=("loops",))


def test_realism_and_the_task_head_are_reported(results, tmp_path):
    re_ = results["realism"]
    for acts in ("random", "scripted"):
        r = re_[acts]
        assert r["windows"] == {"1": [1, 1], "3": [2, 3]} and len(r["sharpness_curve"]) == 3
        for side in ("world", "other_world", "mean_frame"):
            for h in (1, 3):
                assert np.isfinite(r[side][f"frechet@{h}"]) and r[side][f"frechet@{h}"] >= 0
                assert np.isfinite(r[side][f"sharpness@{h}"]) and r[side][f"sharpness@{h}"] >= 0
        assert "sharpness_min_from_64" not in r  # horizons 1 and 3 only: the sharpness targets read n/a
    assert re_["scripted"]["episodes"] == 2 and re_["features"]["dim"] == 64
    tr = results["task_reached"]
    assert tr["episodes"] == 2 and tr["steps"] == 3
    for rule in ("head", "env_rule"):
        assert tr[rule]["called"] >= tr[rule]["true_positives"] >= 0
    m = results["metrics"]
    assert m["frechet_random@3"] == re_["random"]["world"]["frechet@3"]
    assert m["frechet_floor_scripted@3"] == re_["scripted"]["other_world"]["frechet@3"]
    assert "reached_precision" in m and "reached_recall" in m
    text = write_report(results, tmp_path / "report.md").read_text()
    assert "## Realism: Fréchet distance and sharpness" in text and "## Task head: reached" in text
    assert f"| **learned world** | {re_['random']['world']['frechet@1']:.2f} |" in text
    assert "| the simulator in other worlds (floor) |" in text and "| the other worlds' mean frame |" in text


@pytest.mark.slow
def test_the_new_measures_leave_the_old_ones_unchanged(tiny_world, probes_dir, results):
    """The scripted rollout and the task head have their own worlds and streams; the realism of the
    random rollout reads its frames only."""
    model, _ = tiny_world
    old = ("rollout", "memory", "events", "speed")
    without = evaluate(model, Probes.load(probes_dir), EvalConfig(**SMALL, measures=old), progress=False)
    assert "task_reached" not in without and "scripted" not in without["realism"]
    assert without["autoregressive"]["psnr_curve"] == results["autoregressive"]["psnr_curve"]
    assert without["loop_closure"]["memory_on_psnr"] == results["loop_closure"]["memory_on_psnr"]
    assert without["event_following"]["model"] == results["event_following"]["model"]
    assert without["realism"]["random"]["world"] == results["realism"]["random"]["world"]
    alone = evaluate(model, Probes.load(probes_dir), EvalConfig(**SMALL, measures=("script", "task")), progress=False)
    assert alone["realism"]["scripted"]["world"] == results["realism"]["scripted"]["world"]
    assert alone["task_reached"]["head"] == results["task_reached"]["head"]
