"""The training stages and the `train world` recipe on tiny CPU settings: losses go down, the
training history is the env's, the recipe writes a model folder that loads and steps, and a run
split across calls (or carried in a packed checkpoint) continues where it stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from yume_env.actions import NUM_ACTIONS
from yume_env.data.sim_clips import EventPlan, IndexedStream, SimClipSource
from yume_env.model.codecs import build_vae
from yume_env.model.dit import build_dit
from yume_env.model.history import History
from yume_env.model.pipeline import WorldModel
from yume_env.model.task_head import TaskHead
from yume_env.model.text_cache import TextConditioner
from yume_env.model.vae import encode_clips
from yume_env.motion import clip_poses
from yume_env.train.recipes.world import load_recipe
from yume_env.train.stages.pretrain import DenoiseModule, PretrainConfig, denoise_batch
from yume_env.train.stages.task_head import RewardConfig, TaskHeadModule, task_examples
from yume_env.train.trainer import Trainer, TrainerConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    """The smoke preset's 32x32 pixel world config, a text conditioner with synthetic embeddings,
    3 rendered clips of 4 steps and their latents."""
    mc = load_recipe("smoke").model_config()
    torch.manual_seed(0)
    text = TextConditioner(
        name="minilm",
        model_id="test",
        dim=mc.text_dim,
        tokens_per_text=1,
        actions=[torch.randn(1, mc.text_dim) for _ in range(NUM_ACTIONS)],
    )
    clips = SimClipSource(mc.height, mc.width, 2).render(3, 4, seed=1)
    vae = build_vae(mc.vae, mc.latent_channels)
    return mc, text, clips, encode_clips(vae, clips.frames)


def _fit(module, batch, steps=15, lr=3e-3):
    cfg = TrainerConfig(
        lr=lr,
        warmup_steps=1,
        max_steps=steps,
        log_every=1,
        ema_decay=0.0,
        progress=False,
        checkpoint_every_s=0,
        min_lr_ratio=1.0,
    )
    result = Trainer(module, cfg, None, name="test").fit(IndexedStream(lambda i: batch))
    return [v for _, v in result.curves.series["loss"]]


def _lowered(losses, factor=0.8):
    return np.mean(losses[-3:]) < factor * np.mean(losses[:3])


def test_pixel_codec_round_trip_is_exact(tiny):
    mc, _, clips, latents = tiny
    vae = build_vae(mc.vae, mc.latent_channels)
    assert latents.shape == (3, mc.latent_channels, 9, 4, 4)
    back = ((vae.decode(latents[:, :, :3]).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(back.permute(0, 2, 3, 4, 1), clips.frames[:, :3])


def test_pretrain_stage_lowers_the_denoising_loss_with_a_noised_history_poses_and_recall(tiny):
    mc, text, clips, latents = tiny
    assert mc.prediction == "sample" and mc.pose_memory and mc.recall_frames == 1
    torch.manual_seed(0)
    batch = denoise_batch(
        latents, clips, 3, text, mc, PretrainConfig(history_noise_prob=1.0), torch.Generator().manual_seed(0)
    )
    assert batch["history"].shape[2] == 7 and batch["history_noise"].min() > 0
    assert batch["history_poses"].shape == (3, 7, 4) and batch["target_pose"].shape == (3, 4)
    losses = _fit(DenoiseModule(build_dit(mc), mc), batch)
    assert _lowered(losses), losses


def test_the_training_history_is_the_history_the_env_builds(tiny):
    """A clip's first k chunks appended at once (training) or chunk by chunk (the env's steps) give
    the same kept latents, poses, banks and channel-stream sums: one History, one rule."""
    mc, _, clips, latents = tiny
    dit = build_dit(mc).eval()
    poses = clip_poses(clips.actions, 2)
    with torch.no_grad():
        whole = History.empty(mc, latents[0, :, 0], batch=3)
        whole.append(dit, latents[:, :, :9], poses[:, :9])
        stepped = History.empty(mc, latents[0, :, 0], batch=3)
        stepped.append(dit, latents[:, :, :1], poses[:, :1])
        for s in range(4):
            stepped.append(dit, latents[:, :, 1 + 2 * s : 3 + 2 * s], poses[:, 1 + 2 * s : 3 + 2 * s])
    assert whole.n_history == stepped.n_history == [9, 9, 9]
    assert torch.equal(whole.latents, stepped.latents) and torch.equal(whole.poses, stepped.poses)
    for a, b in zip(whole.memory, stepped.memory):  # the same sums, added in another order
        torch.testing.assert_close(a.kv, b.kv, rtol=1e-4, atol=1e-5)
    assert torch.equal(whole.recall.stamp, stepped.recall.stamp) and torch.equal(
        whole.recall.latents, stepped.recall.latents
    )


def test_reward_stage_lowers_task_head_loss_on_simulator_labels(tiny):
    mc, _, clips, latents = tiny
    torch.manual_seed(0)
    batch = task_examples(clips, latents, noise=0.0, seed=0)
    assert batch["latents"].shape[0] == 3 * 4 and batch["distance"].min() > 0
    head = TaskHead(mc.latent_channels, mc.latent_hw)
    losses = _fit(TaskHeadModule(head, RewardConfig()), batch, lr=1e-2)
    assert _lowered(losses, 0.5), losses


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_the_sampler_runs_the_configured_number_of_denoising_steps(tiny, steps):
    mc, text, clips, _ = tiny
    world = WorldModel.from_config(mc.replace(sample_steps=steps), seed=0, text=text)
    calls = []
    world.dit.register_forward_hook(lambda *_: calls.append(1))
    state = world.init_state(clips.frames[0, :1].numpy())
    out = world.step(state, np.array([[1, 0]]), torch.Generator().manual_seed(0))
    assert len(calls) == steps and out.frames.shape == (1, 2, 32, 32, 3)


def _text_cache_or_skip(tmp_path):
    from yume_env.train.text_cache import build_text_cache

    try:
        return build_text_cache(tmp_path / "text_cache.safetensors")
    except ImportError as exc:
        pytest.skip(f"MiniLM text encoder not installed: {exc}")


@pytest.mark.slow
def test_world_recipe_writes_a_model_folder_that_loads_and_steps_and_resumes(tmp_path, capsys):
    from yume_env.cli import main

    cache = _text_cache_or_skip(tmp_path)
    run = tmp_path / "run"
    args = ["train", "world", "--out", str(run), "--text-cache", str(cache), "--preset", "smoke", "--device", "cpu"]
    assert main(args + ["--call-minutes", "0.0001"]) == 0  # out of time at once: checkpoint, stop
    assert not json.loads((run / "run.json").read_text()).get("exported")
    assert main(args) == 0  # the next call resumes and finishes
    state = json.loads((run / "run.json").read_text())
    assert len(state["calls"]) == 2 and state["exported"]
    assert all(state["stages"][s]["done"] for s in ("pretrain", "reward"))
    assert (run / "curves" / "pretrain.json").is_file() and (run / "samples" / "scripted.gif").is_file()
    card = (run / "model" / "README.md").read_text()
    assert card.startswith("---\n") and "GPU-minutes" in card and "rollout_psnr_mean_db" in card
    world = WorldModel.from_pretrained(run / "model")
    assert world.task_head is not None and world.start_frames["frames"].shape[1:] == (32, 32, 3)
    s = world.init_state(world.start_frames["frames"][:1], event="it starts to snow")
    out = world.step(s, np.array([[1, 0]]), torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 2, 32, 32, 3) and world.predict_task(out.latents)["distance"].shape == (1,)
    assert main(args + ["--set", "pretrain.batch_size=2"]) == 2  # another recipe: refused, naming the run's
    assert "holds a run of preset 'smoke' with overrides []" in capsys.readouterr().err


def test_a_run_stopped_midway_continues_the_same_losses(tmp_path, tiny):
    """Stopped after 3 steps and resumed by new objects, a stage gives bitwise the losses of one
    uninterrupted run (the stream's position, RNG and schedule are in the checkpoint)."""
    from yume_env.train.stages.pretrain import PretrainStream

    mc, text, _, _ = tiny
    cfg = PretrainConfig(
        batch_size=2,
        clip_steps=3,
        pool_clips=3,
        trainer=TrainerConfig(
            lr=1e-3, warmup_steps=1, max_steps=6, log_every=1, ema_decay=0.9, progress=False, checkpoint_every_s=0
        ),
    )
    source = SimClipSource(mc.height, mc.width, 2, events=EventPlan(probability=0.0))  # the test text knows no events
    vae = build_vae(mc.vae, mc.latent_channels)

    def trainer(out):
        torch.manual_seed(0)
        stream = PretrainStream(source, vae, text, mc, cfg)
        t = Trainer(DenoiseModule(build_dit(mc), mc), cfg.trainer, out, name="pretrain")
        t.resume(stream)
        return t, stream

    whole, stream = trainer(tmp_path / "whole")
    whole.fit(stream)
    first, stream = trainer(tmp_path / "split")
    first.fit(stream, until_step=3)
    second, stream = trainer(tmp_path / "split")
    assert second.step == 3
    second.fit(stream)
    assert whole.curves.series["loss"] == second.curves.series["loss"]


def test_recipe_presets_and_overrides_change_nested_values_and_reject_unknown_fields():
    recipe = load_recipe(
        "default-world", ["pretrain.batch_size=16", "pretrain.trainer.lr=1e-3", "model.dim=240", "fractions.reward=0.2"]
    )
    assert recipe.pretrain.batch_size == 16 and recipe.pretrain.trainer.lr == 1e-3
    assert recipe.model_config().dim == 240 and recipe.fractions["reward"] == 0.2
    with pytest.raises(ValueError, match="PretrainConfig has no field 'batch'"):
        load_recipe("default-world", ["pretrain.batch=16"])
    with pytest.raises(ValueError, match="unknown world preset 'nope'"):
        load_recipe("nope")


def test_a_packed_checkpoint_resumes_from_its_ema_weights_with_fresh_optimizer_moments(tmp_path, tiny):
    """What a run carries between machines: the EMA weights only; the run continues from them."""
    from yume_env.train.checkpointing import latest_checkpoint, load_checkpoint, pack_checkpoint
    from yume_env.train.stages.pretrain import PretrainStream

    mc, text, _, _ = tiny
    cfg = PretrainConfig(
        batch_size=2,
        clip_steps=3,
        pool_clips=3,
        trainer=TrainerConfig(
            lr=1e-3, warmup_steps=2, max_steps=5, log_every=1, ema_decay=0.9, progress=False, checkpoint_every_s=0
        ),
    )
    source = SimClipSource(mc.height, mc.width, 2, events=EventPlan(probability=0.0))
    vae = build_vae(mc.vae, mc.latent_channels)
    stream = PretrainStream(source, vae, text, mc, cfg)
    first = Trainer(DenoiseModule(build_dit(mc), mc), cfg.trainer, tmp_path, name="pretrain")
    first.fit(stream, until_step=3)
    pack_checkpoint(tmp_path)
    _, packed = load_checkpoint(latest_checkpoint(tmp_path))
    assert packed["model"] is None and packed["optimizer"] is None
    assert all(v.dtype == torch.bfloat16 for v in packed["ema"]["shadow"].values() if v.is_floating_point())
    stream = PretrainStream(source, vae, text, mc, cfg)
    second = Trainer(DenoiseModule(build_dit(mc), mc), cfg.trainer, tmp_path, name="pretrain")
    assert second.resume(stream) and second.step == 3 and stream.index == 3
    for name, p in second.module.named_parameters():  # the model starts from the carried EMA weights
        assert torch.equal(p.detach(), packed["ema"]["shadow"][name].float()), name
    assert second.extra["optimizer_restarted_at"] == 3 and second.lr_now() < cfg.trainer.lr  # warming up again
    assert second.fit(stream).finished and second.step == 5


def test_the_tensorboard_logger_writes_event_files(tmp_path, tiny):
    pytest.importorskip("tensorboard")
    mc, _, clips, latents = tiny
    batch = task_examples(clips, latents, noise=0.0, seed=0)
    cfg = TrainerConfig(
        lr=1e-3,
        warmup_steps=1,
        max_steps=3,
        log_every=1,
        ema_decay=0.0,
        progress=False,
        checkpoint_every_s=0,
        logger="tensorboard",
    )
    Trainer(
        TaskHeadModule(TaskHead(mc.latent_channels, mc.latent_hw), RewardConfig()),
        cfg,
        tmp_path / "ckpt" / "reward",
        name="reward",
    ).fit(IndexedStream(lambda i: batch))
    assert list((tmp_path / "tensorboard" / "reward").glob("events.out.tfevents.*"))
