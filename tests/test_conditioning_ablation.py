"""The conditioning ablation on the shipped default world: it runs, and the world uses its history."""

from yume_env.model.paths import default_world_path
from yume_env.model.pipeline import WorldModel
from yume_env.eval.conditioning import conditioning_ablation, markdown


def test_the_default_world_depends_on_its_history_and_action(one_thread):
    world = WorldModel.from_pretrained(default_world_path())
    result = conditioning_ablation(world, clips=8, step=3, noise_levels=(1.0,))
    row = result["rows"][0]
    assert set(row) >= {"true", "shuffled_action", "shuffled_history", "zero_history", "copy_last_frame"}
    # at pure noise, x0 comes only from the conditioning: another clip's history must hurt a lot,
    # another clip's action somewhat
    assert row["shuffled_history"] > 1.5 * row["true"]
    assert row["shuffled_action"] > row["true"]
    assert "| 1.0 |" in markdown(result)
