"""`History` as one padded tensor state: worlds of different lengths in one batch, rows, and grouping."""

import numpy as np
import torch

from yume_env.model import WorldModelConfig
from yume_env.model.dit import build_dit
from yume_env.model.history import History
from yume_env.model.rows import group_rows
from yume_env.model.tscm import frames_to_keep


def _config():
    return WorldModelConfig.preset("tiny").replace(dim=32, ffn_dim=64, num_heads=2, num_layers=1)


def _histories(config, dit, lengths, seed=0):
    """One History per world, each appended its own random latents (one chunk per append)."""
    g = torch.Generator().manual_seed(seed)
    C, (h, w) = config.latent_channels, config.latent_hw
    out = []
    for n in lengths:
        hist = History.empty(config, torch.zeros(C, h, w))
        hist.append(dit, torch.randn(1, C, 1, h, w, generator=g))
        while hist.n_history[0] < n:
            hist.append(dit, torch.randn(1, C, 2, h, w, generator=g))
        out.append(hist)
    return out


def test_group_rows_groups_equal_keys_in_order_of_first_appearance():
    groups = group_rows([5, 3, 5, 3, 7], [1, 1, 1, 1, 2])
    assert [k for k, _ in groups] == [(5, 1), (3, 1), (7, 2)]
    assert [m.tolist() for _, m in groups] == [[0, 2], [1, 3], [4]]


def test_a_batch_of_worlds_at_different_lengths_keeps_what_each_world_alone_keeps():
    """Joined, stepped together and taken apart again, every world holds exactly the latents it
    holds when stepped alone: padding never leaks into a world."""
    config = _config()
    dit = build_dit(config).eval()
    lengths = [1, 3, 9, 41]
    alone = _histories(config, dit, lengths)
    joined = History.cat([h.clone() for h in alone])
    assert joined.kept == [len(frames_to_keep(config.tscm_schedule, n)) for n in lengths]
    g = torch.Generator().manual_seed(7)
    C, (h, w) = config.latent_channels, config.latent_hw
    with torch.no_grad():
        for _ in range(3):
            new = torch.randn(len(lengths), C, 2, h, w, generator=g)
            joined.append(dit, new)
            for i, hist in enumerate(alone):
                hist.append(dit, new[i : i + 1])
    for i, hist in enumerate(alone):
        assert joined.n_history[i] == hist.n_history[0]
        assert torch.equal(joined.world_latents(i), hist.world_latents(0))
        assert torch.equal(joined.rows([i]).latents, hist.latents)
        assert torch.equal(joined.tail(2)[i], hist.tail(2)[0])


def test_newest_is_one_tensor_when_every_world_keeps_enough_and_refuses_otherwise():
    config = _config()
    dit = build_dit(config).eval()
    joined = History.cat(_histories(config, dit, [3, 9]))
    newest = joined.newest(2)
    assert newest.shape[2] == 2
    for i in range(2):
        assert torch.equal(newest[i], joined.tail(2)[i])
    mixed = History.cat(_histories(config, dit, [1, 3]))
    try:
        mixed.newest(2)
    except ValueError as exc:
        assert "History.tail" in str(exc)
    else:
        raise AssertionError("newest(2) of a world that keeps 1 latent beside one that keeps 3 must refuse")
    assert [t.shape[1] for t in mixed.tail(2)] == [1, 2]


def test_set_rows_overwrites_one_world_in_place_and_leaves_the_others():
    config = _config()
    dit = build_dit(config).eval()
    batch = History.cat(_histories(config, dit, [9, 9, 9], seed=1))
    before = [batch.world_latents(i).clone() for i in range(3)]
    (fresh,) = _histories(config, dit, [41], seed=2)  # keeps more latents than the batch holds
    batch.set_rows([1], fresh)
    assert batch.n_history == [9, 41, 9]
    assert torch.equal(batch.world_latents(1), fresh.world_latents(0))
    for i in (0, 2):
        assert torch.equal(batch.world_latents(i), before[i])
    saved = [batch.world_dict(i) for i in range(3)]
    restored = History.from_world_dicts(config, saved)
    for i in range(3):
        assert torch.equal(restored.world_latents(i), batch.world_latents(i))
    assert np.array_equal(restored.kept, batch.kept)
