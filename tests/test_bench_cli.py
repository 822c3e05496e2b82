"""`yume-env bench`: measures single and batched steps/s and a soak, writes JSON and markdown."""

from __future__ import annotations

import json

import pytest
from test_env_support import tiny_world_dir

from yume_env.cli import main


@pytest.mark.slow
def test_bench_writes_json_and_markdown_with_batches_and_soak(tmp_path, capsys):
    path = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "--model",
            tiny_world_dir(),
            "--num-envs",
            "1,2",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--soak",
            "4",
            "--window",
            "2",
            "--json",
            str(path),
        ]
    )
    assert rc == 0
    result = json.loads(path.read_text())
    assert [b["num_envs"] for b in result["batches"]] == [1, 2]
    assert all(b["env_steps_per_s"] > 0 and len(b["warmup_step_s"]) == 1 for b in result["batches"])
    soak = result["soak"]
    assert soak["steps"] == 4 and soak["at_last_step"]["memory"]["history_chunks"] >= 1
    assert soak["ratio_last_to_first"] > 0 and len(soak["median_step_s_per_window"]) == 2
    assert soak["median_step_cpu_s_last_window"] > 0 and result["batches"][0]["median_step_cpu_s"] > 0
    table = path.with_suffix(".md").read_text()
    assert "| 2 |" in table and "Soak" in table and "| 1 |" in capsys.readouterr().out


def test_bench_writes_by_default_into_the_working_folder_under_fresh_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as from a repo root: benchmarks/results/ is never the default
    args = ["bench", "--model", tiny_world_dir(), "--num-envs", "1", "--steps", "1", "--warmup", "0"]
    assert main(args) == 0 and main(args) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 4 and all(n.startswith("yume-env-bench-") for n in names), names  # two runs, two pairs


def test_a_default_bench_name_never_takes_one_that_exists(tmp_path):
    from yume_env.cli.bench import fresh_output_path

    first = fresh_output_path(tmp_path, stamp="20260101-000000")
    first.with_suffix(".md").write_text("a table someone keeps")
    second = fresh_output_path(tmp_path, stamp="20260101-000000")
    assert first.name == "yume-env-bench-20260101-000000.json"
    assert second.name == "yume-env-bench-20260101-000000-2.json"


def test_bench_profile_reports_the_time_split_and_top_ops(tmp_path):
    path = tmp_path / "bench.json"
    args = ["bench", "--model", tiny_world_dir(), "--num-envs", "2", "--steps", "1", "--warmup", "1"]
    assert main(args + ["--profile", "2", "--json", str(path)]) == 0
    profile = json.loads(path.read_text())["batches"][0]["profile"]
    assert profile["profiled_steps"] == 2 and profile["top_ops_by"] == "self CPU time"
    assert profile["kernel_s_per_step"] is None and profile["host_s_per_step"] is None  # no GPU kernels on a CPU
    ops = profile["top_ops"]
    assert ops and all(o["self_s_per_step"] > 0 and o["calls_per_step"] > 0 for o in ops)
    assert [o["self_s_per_step"] for o in ops] == sorted((o["self_s_per_step"] for o in ops), reverse=True)
    assert any("addmm" in o["op"] or "linear" in o["op"] or "mm" in o["op"] for o in ops)
    table = path.with_suffix(".md").read_text()
    assert "Where the time goes" in table and "Top ops at 2 world(s)" in table


def test_a_profile_split_gives_the_host_the_wall_time_the_kernels_do_not_take():
    from yume_env.cli.bench_profile import split

    out = split({"kernel_s_per_step": 0.03, "profiled_cpu_s_per_step": 0.05, "top_ops": []}, median_step_s=0.04)
    assert out["host_s_per_step"] == pytest.approx(0.01) and out["kernel_fraction"] == pytest.approx(0.75)


def test_bench_tensors_times_the_tensor_path_at_every_batch_size(tmp_path):
    path = tmp_path / "bench.json"
    args = ["bench", "--model", tiny_world_dir(), "--num-envs", "1,2", "--steps", "1", "--warmup", "0"]
    assert main([*args, "--tensors", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert result["tensors"] is True and [b["num_envs"] for b in result["batches"]] == [1, 2]
    assert all(b["env_steps_per_s"] > 0 for b in result["batches"])
    assert "`--tensors`" in path.with_suffix(".md").read_text()
