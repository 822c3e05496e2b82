"""The Yume-5B speed benchmark's logic runs end to end on a scaled-down model on the CPU (--smoke)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("yume5b_speed", ROOT / "benchmarks" / "yume5b_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_smoke_run_writes_one_row_per_history_with_the_required_fields(tmp_path):
    bench = _load()
    assert (
        bench.main(
            ["--smoke", "--history", "4,30", "--modes", "causal", "--no-decode", "--no-offload", "--out", str(tmp_path)]
        )
        == 0
    )
    result = json.loads((tmp_path / "yume5b_h100.json").read_text())
    assert [r["history_latents"] for r in result["rows"]] == [4, 30]
    for row in result["rows"]:
        assert {"height", "width", "history_latents", "dit_chunk_s", "decode_chunk_s", "peak_gib"} <= set(row)
        assert row["dit_chunk_s"] > 0 and row["exact"] is False
    assert result["torch"] and result["gpu"].startswith("cpu")
    assert "| 30 |" in (tmp_path / "yume5b_h100.md").read_text()
