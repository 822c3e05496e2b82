"""benchmarks/batched_host_cpu.py at toy sizes: it runs, writes its table, and a step's torch ops
do not grow with the number of worlds."""

import importlib.util
import json
from pathlib import Path


def test_batched_host_benchmark_writes_rows_whose_op_count_does_not_grow(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "batched_host_cpu.py"
    spec = importlib.util.spec_from_file_location("batched_host_cpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    bench.main(["--worlds", "2", "5", "--steps", "1", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["worlds"] for r in rows] == [2, 5]
    assert rows[0]["torch_ops_per_step"] == rows[1]["torch_ops_per_step"] > 0
    assert all(r["step_s"] > 0 and r["reset_all_s"] > 0 for r in rows)
    assert "| 5 |" in out.with_suffix(".md").read_text()
