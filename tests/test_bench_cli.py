"""`yume-env bench`: measures single and batched steps/s and a soak, writes JSON and markdown."""

from __future__ import annotations

import json

import pytest
from test_env_support import tiny_world_dir

from yume_env.cli import main


@pytest.mark.slow
def test_bench_writes_json_and_markdown_with_batches_and_soak(tmp_path, capsys):
    path = tmp_path / "bench.json"
    rc = main(["bench", "--model", tiny_world_dir(), "--num-envs", "1,2", "--steps", "2", "--warmup", "1",
               "--soak", "4", "--window", "2", "--json", str(path)])
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
