"""The finetune stage: LoRA lowers the loss on a generated Sekai folder, latents are cached, the
adapters round-trip (and merge), a stopped run resumes on the same curve, the CLI under torchrun (FSDP2) writes its outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yume_env.data.latent_cache import LatentLibrary
from yume_env.model import WorldModel, WorldModelConfig
from yume_env.model.text import TextEmbedding, TextEncoder
from yume_env.model.text_cache import TextConditioner
from yume_env.train import distributed as D
from yume_env.train import finetune as ft
from yume_env.train import lora
from yume_env.train.stages.pretrain import DenoiseModule

ROOT = Path(__file__).resolve().parents[1]


class HashText(TextEncoder):
    """A deterministic stand-in for MiniLM (one pooled 384-d token per text): text is not under test."""

    name, model_id, dim, tokens_per_text = "hash", "test/hash", 384, 1

    def encode(self, texts):
        rows = [
            torch.randn(
                1, self.dim, generator=torch.Generator().manual_seed(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
            )
            for t in texts
        ]
        return TextEmbedding(torch.stack(rows), torch.ones(len(texts), 1, dtype=torch.bool))


def small_model(seed: int = 0) -> WorldModel:
    """The tiny preset cut to 2 blocks, its zero-initialised output head set as if pretrained
    (LoRA in the blocks gets no gradient through a zero head)."""
    config = WorldModelConfig.preset("tiny").replace(num_layers=2)
    model = WorldModel.from_config(config, seed=seed, text=TextConditioner.build(HashText()))
    with torch.no_grad():
        torch.nn.init.normal_(model.dit.head.head.weight, std=0.02, generator=torch.Generator().manual_seed(seed))
    return model


def config(steps: int, **kw) -> ft.FinetuneConfig:
    cfg = ft.FinetuneConfig(batch_size=2, **kw)
    cfg.trainer = dataclasses.replace(
        cfg.trainer, max_steps=steps, lr=1e-2, warmup_steps=1, log_every=1, progress=False, checkpoint_every_s=0.0
    )
    return cfg


@pytest.fixture(scope="module")
def sekai(tmp_path_factory) -> Path:
    from yume_env.data import generate_dataset

    root = tmp_path_factory.mktemp("sekai") / "data"
    generate_dataset(root, clips=3, frames=9, seed=3, progress=False)
    return root


def fixed_batch_loss(model: WorldModel, library, batch) -> float:
    with torch.no_grad():
        return float(DenoiseModule(model.dit, model.config)(batch)[0])


def test_lora_finetune_lowers_the_loss_of_a_fixed_batch_and_trains_only_adapters(sekai, tmp_path):
    torch.manual_seed(0)
    model = small_model()
    base = {k: v.clone() for k, v in model.dit.state_dict().items()}
    cfg = config(8)
    library = LatentLibrary([sekai], model.vae, model.config, tmp_path / "latents", D.DistInfo(), progress=False)
    probe = ft.FinetuneStream(
        library,
        model.text,
        model.config,
        dataclasses.replace(cfg, batch_size=8, trainer=dataclasses.replace(cfg.trainer, seed=99)),
        "cpu",
    ).make(0)
    before = fixed_batch_loss(model, library, probe)
    result = ft.finetune(model, [sekai], tmp_path / "run", cfg, cache_dir=tmp_path / "latents", progress=False)
    after = fixed_batch_loss(model, library, probe)
    assert result.finished and result.metrics["clips_encoded"] == 0  # the latents came from the cache
    assert after < before - 0.01, (before, after)
    assert (tmp_path / "run" / lora.LORA_DIR / lora.WEIGHTS_FILE).is_file() and (
        tmp_path / "run" / "curves.json"
    ).is_file()
    now = model.dit.state_dict()
    frozen = [k for k in base if "lora_" not in k]
    assert all(
        torch.equal(
            base[k],
            now[k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")]
            if k not in now
            else now[k],
        )
        for k in frozen
    )


def test_latent_cache_is_reused_for_the_same_vae_and_rebuilt_for_another(sekai, tmp_path):
    model = small_model()
    info = D.DistInfo()
    first = LatentLibrary([sekai], model.vae, model.config, tmp_path, info, progress=False)
    again = LatentLibrary([sekai], model.vae, model.config, tmp_path, info, progress=False)
    assert first.encoded == 3 and again.encoded == 0
    assert torch.equal(first.latents(0), again.latents(0))
    assert first.latents(0).shape == (16, 9, 8, 8)  # (C, frames, h, w): the tiny VAE is 1x in time
    with torch.no_grad():
        next(model.vae.parameters()).add_(0.01)
    assert LatentLibrary([sekai], model.vae, model.config, tmp_path, info, progress=False).encoded == 3
    assert not list(tmp_path.rglob("*.tmp"))


def test_lora_round_trip_reloads_into_a_fresh_model_with_identical_outputs_and_merges(sekai, tmp_path):
    trained = small_model()
    lora.add_lora(trained.dit, rank=4, alpha=8.0)
    with torch.no_grad():  # stand-in for training: non-zero adapters
        for name, p in trained.dit.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    path = lora.save_lora(trained.dit, tmp_path / "lora", 4, 8.0, lora.DEFAULT_TARGETS)
    library = LatentLibrary([sekai], trained.vae, trained.config, tmp_path / "latents", D.DistInfo(), progress=False)
    batch = ft.FinetuneStream(library, trained.text, trained.config, config(1), "cpu").make(0)
    reference = fixed_batch_loss(trained, library, batch)

    fresh = small_model()
    lora.load_lora(fresh.dit, path)
    assert fixed_batch_loss(fresh, library, batch) == reference
    merged = small_model()
    lora.load_lora(merged.dit, path, merge=True)
    assert not lora.has_lora(merged.dit)
    assert set(merged.dit.state_dict()) == set(small_model().dit.state_dict())
    assert fixed_batch_loss(merged, library, batch) == pytest.approx(reference, rel=1e-4)
    assert fixed_batch_loss(small_model(), library, batch) != pytest.approx(reference, rel=1e-4)


def test_lora_file_of_another_shape_is_refused_by_name(tmp_path):
    model = small_model()
    lora.add_lora(model.dit, rank=4, targets=("q", "k"))
    path = lora.save_lora(model.dit, tmp_path / "lora", 4, 4.0, ("q", "k"))
    other = WorldModel.from_config(
        WorldModelConfig.preset("tiny").replace(num_layers=3), text=TextConditioner.build(HashText())
    )
    with pytest.raises(ValueError, match="do not fit this model"):
        lora.load_lora(other.dit, path)


@pytest.mark.slow
def test_stopped_lora_run_resumes_from_its_checkpoint_on_the_same_curve(sekai, tmp_path):
    cfg = config(3)
    straight = ft.finetune(small_model(), [sekai], tmp_path / "a", cfg, cache_dir=tmp_path / "latents", progress=False)
    first = ft.finetune(
        small_model(), [sekai], tmp_path / "b", cfg, cache_dir=tmp_path / "latents", progress=False, until_step=2
    )
    assert not first.finished and first.trainer.step == 2
    ckpt = tmp_path / "b" / "ckpt"
    state = json.loads(next(ckpt.glob("step-*/state.json")).read_text())["state"]
    assert "lora_" in json.dumps(state)  # only adapters are checkpointed ...
    assert "patch_embedding" not in json.dumps(state)  # ... not the frozen base weights
    resumed = ft.finetune(
        small_model(seed=0), [sekai], tmp_path / "b", cfg, cache_dir=tmp_path / "latents", progress=False
    )
    assert resumed.metrics["resumed"] and resumed.finished
    a = straight.trainer.curves.state_dict()["loss"]
    b = resumed.trainer.curves.state_dict()["loss"]
    assert [s for s, _ in b] == [1, 2, 3]
    torch.testing.assert_close(torch.tensor([v for _, v in b]), torch.tensor([v for _, v in a]), rtol=1e-5, atol=1e-6)


def test_cli_presets_and_overrides_build_the_finetune_config():
    from yume_env.cli import build_subparser

    def parse(*extra):
        parser, _ = build_subparser("train")
        args = parser.parse_args(["finetune", "--model", "M", "--data", "D", "--out", "O", *extra])
        return ft.config_from_args(args)

    lora_cfg = parse()
    assert lora_cfg.mode == "lora" and lora_cfg.trainer.lr == 1e-4 and lora_cfg.alpha == 16.0
    full = parse("--preset", "full", "--steps", "30", "--set", "trainer.lr=5e-5", "--set", "batch_size=2")
    assert full.mode == "full" and full.trainer.lr == 5e-5 and full.batch_size == 2
    assert full.trainer.max_steps == 30 and full.trainer.warmup_steps == 3
    assert parse("--set", "lora_rank=4").alpha == 4.0  # alpha follows the rank unless set
    with pytest.raises(ValueError, match="FinetuneConfig has no field 'rank'"):
        parse("--set", "rank=4")


@pytest.mark.slow
def test_cli_under_torchrun_fsdp_lora_writes_adapters_and_a_merged_model_folder(sekai, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "yume_env",
        "train",
        "finetune",
        "--model",
        "preset:tiny",
        "--data",
        str(sekai),
        "--out",
        str(out),
        "--steps",
        "2",
        "--set",
        "batch_size=1",
        "--device",
        "cpu",
        "--parallel",
        "fsdp",
        "--set",
        "trainer.activation_checkpointing=true",
        "--set",
        "merge=true",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout[proc.stdout.index("{") : proc.stdout.rindex("}") + 1])
    assert report["finished"] and report["metrics"]["step"] == 2
    merged = WorldModel.from_pretrained(out / "model")
    assert merged.config == WorldModelConfig.preset("tiny")
    base = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)
    lora.load_lora(
        base.dit, out / lora.LORA_DIR, merge=True
    )  # the adapters on the same random base = the merged folder
    for k, v in merged.dit.state_dict().items():
        torch.testing.assert_close(base.dit.state_dict()[k], v)
