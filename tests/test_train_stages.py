"""Each training stage lowers its loss on a tiny model; the default-world recipe's smoke preset
produces a model folder that `WorldModel.from_pretrained` opens and steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from yume_env.actions import NUM_ACTIONS
from yume_env.model.dit import build_dit
from yume_env.model.task_head import TaskHead
from yume_env.model.text_cache import TextConditioner
from yume_env.model.vae import build_vae
from yume_env.data.sim_clips import IndexedStream, SimClipSource
from yume_env.train.recipes.default_world import smoke_recipe
from yume_env.model.vae import encode_clips
from yume_env.train.stages.pretrain import FlowMatchingModule, PretrainConfig, flow_batch
from yume_env.train.stages.self_forcing import SelfForcingConfig, SelfForcingStream
from yume_env.train.stages.task_head import RewardConfig, TaskHeadModule, task_examples
from yume_env.train.stages.vae import VAEStageConfig, VAETrainModule
from yume_env.train.trainer import Trainer, TrainerConfig


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    """A 32x32 model config, a VAE, a text conditioner with synthetic embeddings, and 3 rendered clips."""
    mc = smoke_recipe().model_config()
    torch.manual_seed(0)
    text = TextConditioner(name="minilm", model_id="test", dim=mc.text_dim, tokens_per_text=1,
                           actions=[torch.randn(1, mc.text_dim) for _ in range(NUM_ACTIONS)])
    source = SimClipSource(mc.height, mc.width, 2)
    clips = source.render(3, 4, seed=1)
    return mc, text, source, clips


def _fit(module, batch, steps=15, lr=3e-3):
    cfg = TrainerConfig(lr=lr, warmup_steps=1, max_steps=steps, log_every=1, ema_decay=0.0, progress=False,
                        checkpoint_every_s=0, min_lr_ratio=1.0)
    result = Trainer(module, cfg, None, name="test").fit(IndexedStream(lambda i: batch))
    losses = [v for _, v in result.curves.series["loss"]]
    return losses


def _lowered(losses, factor=0.8):
    return np.mean(losses[-3:]) < factor * np.mean(losses[:3])


def test_vae_stage_lowers_reconstruction_loss(tiny):
    mc, _, _, clips = tiny
    torch.manual_seed(0)
    vae = build_vae(mc.vae, mc.latent_channels)
    losses = _fit(VAETrainModule(vae, VAEStageConfig(latent_noise=0.0)), clips.frames[:, :3], lr=1e-2)
    assert _lowered(losses, 0.85), losses


def test_pretrain_stage_lowers_flow_matching_loss_with_tscm_history_and_memory(tiny):
    mc, text, _, clips = tiny
    torch.manual_seed(0)
    vae = build_vae(mc.vae, mc.latent_channels).eval()
    latents = encode_clips(vae, clips.frames)
    cfg = PretrainConfig()
    batch = flow_batch(latents, clips, [0, 2, 3], text, mc, cfg, torch.Generator().manual_seed(0))
    assert [h.shape[1] for h in batch["history"]] == [1, 5, 7]  # random history lengths, one per clip
    losses = _fit(FlowMatchingModule(build_dit(mc), memory=True), batch)
    assert _lowered(losses), losses


def test_self_forcing_stream_trains_on_self_generated_history(tiny):
    mc, text, source, _ = tiny
    torch.manual_seed(0)
    vae = build_vae(mc.vae, mc.latent_channels).eval()
    dit = build_dit(mc)
    cfg = SelfForcingConfig(batch_size=2, max_burn_in=1, max_generated=2, clean_fraction=0.0, pool_clips=2)
    stream = SelfForcingStream(dit, source, vae, text, mc, cfg)
    batch = stream.next()
    clips, latents, pick, _ = stream.pool.draw(0)
    n = batch["history"][0].shape[1]
    assert n >= 3 and (n - 1) % 2 == 0
    truth = latents[pick][0, :, :n]
    assert not torch.allclose(batch["history"][0][:, -2:], truth[:, -2:], atol=0.5)  # the model's own chunks
    losses = _fit(FlowMatchingModule(dit), batch)
    assert _lowered(losses), losses


def test_reward_stage_lowers_task_head_loss_on_simulator_labels(tiny):
    mc, _, _, clips = tiny
    torch.manual_seed(0)
    vae = build_vae(mc.vae, mc.latent_channels).eval()
    batch = task_examples(clips, encode_clips(vae, clips.frames), noise=0.0, seed=0)
    assert batch["latents"].shape[0] == 3 * 4 and batch["distance"].min() > 0
    head = TaskHead(mc.latent_channels, mc.latent_hw)
    losses = _fit(TaskHeadModule(head, RewardConfig()), batch, lr=1e-2)
    assert _lowered(losses, 0.5), losses


def _text_cache_or_skip(tmp_path):
    from yume_env.train.text_cache import build_text_cache

    try:
        return build_text_cache(tmp_path / "text_cache.safetensors")
    except ImportError as exc:
        pytest.skip(f"MiniLM text encoder not installed: {exc}")


@pytest.mark.slow
def test_smoke_recipe_writes_a_model_folder_that_loads_and_steps(tmp_path):
    from yume_env.model.pipeline import WorldModel
    from yume_env.train.recipes import default_world

    cache = _text_cache_or_skip(tmp_path)
    run = tmp_path / "run"
    args = ["--out", str(run), "--text-cache", str(cache), "--smoke", "--device", "cpu"]
    assert default_world.main(args + ["--call-minutes", "0.0001"]) == 0  # out of time at once: checkpoint, stop
    assert not json.loads((run / "run.json").read_text()).get("exported")
    assert default_world.main(args) == 0  # the next call resumes and finishes
    state = json.loads((run / "run.json").read_text())
    assert len(state["calls"]) == 2
    assert state["exported"] and all(state["stages"][s]["done"] for s in default_world.STAGES)
    for name in ("vae", "pretrain", "self_forcing", "reward"):
        assert (run / "curves" / f"{name}.png").is_file() and (run / "curves" / f"{name}.json").is_file()
    assert (run / "samples" / "scripted.gif").is_file()
    assert "drift_psnr_before_self_forcing" in state["metrics"] and "drift_psnr_after_self_forcing" in state["metrics"]
    # the exported DiT is the stage with the better rollout PSNR; only its weights are kept
    m = state["metrics"]
    kept = "dit_self_forcing" if m["drift_psnr_after_self_forcing"] >= m["drift_psnr_before_self_forcing"] else "dit_pretrain"
    assert m["exported_dit"] == kept
    assert sorted(p.stem for p in (run / "weights").glob("dit_*.safetensors")) == [kept]
    card = (run / "model" / "MODEL_CARD.md").read_text()
    assert "GPU-minutes" in card and "| call | processes x device |" in card and "rollout_psnr_mean_db" in card
    world = WorldModel.from_pretrained(run / "model")
    assert world.task_head is not None and world.start_frames["frames"].shape[1:] == (32, 32, 3)
    s = world.init_state(world.start_frames["frames"][:1], event="it starts to snow")
    out = world.step([s], np.array([[1, 0]]), torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 2, 32, 32, 3) and world.predict_task(out.latents)["distance"].shape == (1,)
    # calling again on a finished run does nothing new and keeps the model
    assert default_world.main(args) == 0


@pytest.mark.slow
def test_smoke_recipe_stop_after_ends_the_run_at_that_stage(tmp_path):
    """A sweep's `--set stop_after=pretrain`: VAE and pretraining finish, nothing after them runs."""
    from yume_env.train.recipes import default_world

    cache = _text_cache_or_skip(tmp_path)
    run = tmp_path / "run"
    args = ["--out", str(run), "--text-cache", str(cache), "--smoke", "--device", "cpu", "--set", "stop_after=pretrain"]
    assert default_world.main(args) == 0
    state = json.loads((run / "run.json").read_text())
    assert [s for s in default_world.STAGES if state["stages"].get(s, {}).get("done")] == ["vae", "pretrain"]
    assert not state.get("exported") and (run / "weights" / "dit_pretrain.safetensors").is_file()
    with pytest.raises(ValueError, match="stop_after must be one of"):
        default_world.main(["--out", str(tmp_path / "bad"), "--text-cache", str(cache), "--smoke", "--device", "cpu",
                            "--set", "stop_after=pretraining"])


def test_folder_clips_from_a_sekai_layout_dataset_match_the_simulator_clip_layout(tmp_path):
    from yume_env.data.generate import generate_dataset
    from yume_env.data.sim_clips import FolderClipSource

    generate_dataset(tmp_path / "data", clips=2, frames=9, height=32, width=32, seed=0, progress=False)
    clips = FolderClipSource(str(tmp_path / "data"), 32, 32, 2).render(3, 3, seed=0)
    assert clips.frames.shape == (3, 7, 32, 32, 3) and clips.frames.dtype == torch.uint8
    assert clips.actions.shape == (3, 3, 2) and len(clips.events) == 3 and len(clips.events[0]) == 3
    with pytest.raises(ValueError, match="model takes"):
        FolderClipSource(str(tmp_path / "data"), 64, 64, 2).render(1, 3, seed=0)


def test_activation_checkpointing_gives_the_same_loss_and_gradients(tiny):
    import copy

    from yume_env.train.distributed import enable_activation_checkpointing

    mc, text, _, clips = tiny
    torch.manual_seed(0)
    vae = build_vae(mc.vae, mc.latent_channels).eval()
    batch = flow_batch(encode_clips(vae, clips.frames), clips, [1, 2, 3], text, mc, PretrainConfig(),
                       torch.Generator().manual_seed(0))
    plain = FlowMatchingModule(build_dit(mc))
    ckpt = copy.deepcopy(plain)
    assert enable_activation_checkpointing(ckpt) == mc.num_layers
    losses = []
    for module in (plain, ckpt):
        loss, _ = module(batch)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_recipe_overrides_change_nested_values_and_reject_unknown_fields():
    from yume_env.train.recipes.default_world import apply_overrides, default_recipe

    r = apply_overrides(default_recipe(), ["pretrain.batch_size=128", "pretrain.trainer.lr=3e-4", "fractions.vae=0.1"])
    assert r.pretrain.batch_size == 128 and r.pretrain.trainer.lr == 3e-4 and r.fractions["vae"] == 0.1
    assert default_recipe().pretrain.batch_size != 128  # presets are not modified
    with pytest.raises(ValueError, match="no field 'batch'"):
        apply_overrides(default_recipe(), ["pretrain.batch=1"])


@pytest.mark.slow
def test_compare_measures_a_run_from_its_latest_pretrain_checkpoint_ema(tmp_path, tiny):
    """recipes.compare loads a run's newest pretrain checkpoint (EMA weights, not the raw model)
    with the run's own VAE and config, and reports PSNRs and the conditioning ablation."""
    from yume_env.train.checkpointing import atomic_save_safetensors, save_checkpoint
    from yume_env.train.recipes.compare import load_run_world, markdown, measure

    from yume_env.model.bench import _HashEncoder  # encodes any event text (the clips carry events)

    mc = tiny[0]
    text = TextConditioner.build(_HashEncoder(mc.text_encoder, mc.text_dim))
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"preset": "smoke", "overrides": [], "stages": {}, "calls": [], "metrics": {}}))
    atomic_save_safetensors(build_vae(mc.vae, mc.latent_channels).state_dict(), run / "weights" / "vae.safetensors")
    torch.manual_seed(3)
    raw, ema = build_dit(mc, device="cpu"), build_dit(mc, device="cpu")
    for p in ema.parameters():
        p.data.normal_(0, 0.02)
    shadow = {f"dit.{k}": v for k, v in ema.state_dict().items()}
    save_checkpoint(run / "ckpt" / "pretrain", 7, {
        "name": "pretrain", "model": {f"dit.{k}": v for k, v in raw.state_dict().items()},
        "ema": {"decay": 0.9, "updates": 7, "shadow": shadow}, "schedule": {"step": 7, "elapsed_s": 12.0}})
    world, _, info = load_run_world(run, text, torch.device("cpu"))
    assert info["step"] == 7 and info["elapsed_s"] == 12.0
    for k, v in ema.state_dict().items():
        assert torch.equal(world.dit.state_dict()[k], v), k
    row = measure(run, text, torch.device("cpu"), save_dits=tmp_path / "dits")  # the smoke recipe's 2 clips x 3 steps
    saved = load_file(tmp_path / "dits" / "run.safetensors")  # float16 copies of the measured (EMA) weights
    for k, v in ema.state_dict().items():
        assert saved[k].dtype == torch.float16 and torch.equal(saved[k], v.half()), k
    assert json.loads((tmp_path / "dits" / "run.json").read_text())["config"] == mc.to_dict()
    assert np.isfinite(row["rollout_psnr_mean_db"]) and np.isfinite(row["teacher_forced_psnr_db"])
    assert set(row["x0_error_t1"]) >= {"true", "shuffled_action", "shuffled_history", "copy_last_frame"}
    assert "| run |" in markdown([row]) and "step-00000007" in markdown([row])
