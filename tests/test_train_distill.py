"""The `distill` stage: a one-step student learns the teacher's few-step samples, and the folder
command turns a model folder into a one-step model folder that loads and steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_support import awake
from yume_env.actions import NUM_ACTIONS
from yume_env.model.pipeline import WorldModel
from yume_env.model.text_cache import TextConditioner
from yume_env.data.sim_clips import IndexedStream, SimClipSource
from yume_env.train.recipes.default_world import smoke_recipe
from yume_env.model.vae import encode_clips
from yume_env.train.stages.distill import DistillConfig, DistillModule, train_distill
from yume_env.train.stages.pretrain import PretrainConfig, flow_batch
from yume_env.train.text_cache import event_texts
from yume_env.train.trainer import Trainer, TrainerConfig

pytestmark = pytest.mark.usefixtures("one_thread")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"  # the id the folder's config asks for: no rebuild


def _text(dim: int) -> TextConditioner:
    """Synthetic embeddings for every action caption and simulator event (no encoder needed)."""
    g = torch.Generator().manual_seed(0)
    return TextConditioner(name="minilm", model_id=MINILM, dim=dim, tokens_per_text=1,
                           actions=[torch.randn(1, dim, generator=g) for _ in range(NUM_ACTIONS)],
                           events={e: torch.randn(1, dim, generator=g) for e in event_texts()})


@pytest.fixture(scope="module")
def teacher():
    mc = smoke_recipe().model_config().replace(sample_steps=2)
    return awake(WorldModel.from_config(mc, seed=0, text=_text(mc.text_dim)), seed=1)


def test_one_step_student_learns_the_teachers_two_step_sample(teacher):
    import copy

    mc = teacher.config
    clips = SimClipSource(mc.height, mc.width, 2).render(3, 4, seed=1)
    batch = flow_batch(encode_clips(teacher.vae, clips.frames), clips, [0, 2, 3], teacher.text, mc, PretrainConfig(),
                       torch.Generator().manual_seed(0))
    student = copy.deepcopy(teacher.dit).requires_grad_(True)
    module = DistillModule(student, teacher.dit, teacher_steps=2, shift=mc.shift)
    assert [n for n, _ in module.named_parameters()] == ["dit." + n for n, _ in student.named_parameters()]
    with torch.no_grad():
        target = module.teacher_sample(batch)
        # what the teacher's weights do in one step is not what they do in two
        one = DistillModule(copy.deepcopy(student), teacher.dit, teacher_steps=1, shift=mc.shift).teacher_sample(batch)
    assert not torch.allclose(one, target, atol=1e-3)
    cfg = TrainerConfig(lr=3e-3, warmup_steps=1, max_steps=25, log_every=1, ema_decay=0.0, progress=False,
                        checkpoint_every_s=0, min_lr_ratio=1.0)
    result = Trainer(module, cfg, None, name="test").fit(IndexedStream(lambda i: batch))
    losses = [v for _, v in result.curves.series["loss"]]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses
    assert all(not p.requires_grad for p in teacher.dit.parameters())  # the teacher stays frozen
    assert torch.equal(module.teacher_sample(batch), target)


def test_a_one_step_teacher_is_refused(teacher):
    mc = teacher.config.replace(sample_steps=1)
    with pytest.raises(ValueError, match=">= 2 sampling steps"):
        train_distill(mc, teacher.dit, teacher.dit, teacher.vae, teacher.text, DistillConfig(), "unused",
                      source=None, info=None)


@pytest.mark.slow
def test_distill_command_turns_a_folder_into_a_one_step_folder_and_resumes(tmp_path, teacher):
    from yume_env.cli import main

    teacher.save_pretrained(tmp_path / "teacher")
    (tmp_path / "teacher" / "MODEL_CARD.md").write_text("# the teacher's card\n")
    run = tmp_path / "run"
    args = ["train", "distill", "--teacher", str(tmp_path / "teacher"), "--out", str(run), "--smoke", "--device", "cpu"]
    assert main(args + ["--call-minutes", "0.0001"]) == 0  # out of time at once: checkpoint, stop
    assert not json.loads((run / "distill.json").read_text())["exported"]
    assert main(args) == 0  # resumes and finishes
    state = json.loads((run / "distill.json").read_text())
    assert state["exported"] and len(state["calls"]) == 2 and state["steps"] == 6 and state["teacher_steps"] == 2
    assert set(state["metrics"]) == {"teacher", "student"}
    assert (run / "curves.png").is_file()
    card = (run / "model" / "MODEL_CARD.md").read_text()
    assert "# the teacher's card" in card and card.startswith("> **One-step student.**") and "## One-step distillation" in card
    world = WorldModel.from_pretrained(run / "model")
    assert world.config.sample_steps == 1
    student, teach = world.dit.state_dict(), teacher.dit.state_dict()
    assert any(not torch.equal(student[k], teach[k]) for k in teach)  # trained
    s = world.init_state(np.zeros((1, 32, 32, 3), np.uint8), event="it starts to snow")
    out = world.step([s], np.array([[1, 0]]), torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 2, 32, 32, 3)
