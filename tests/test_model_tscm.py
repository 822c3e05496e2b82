"""TSCM temporal-spatial stream: band schedules, published token layout, bounded growth."""

import math
import time

import pytest
import torch

from yume_env.model.tscm import (
    SCHEDULES,
    append_history,
    band_columns,
    frames_to_keep,
    history_token_count,
    keep_positions,
    plan_history,
    thin_indices,
)

PUBLISHED_COUNTS_44x80 = {4: 2200, 13: 4380, 29: 5025, 85: 5865, 341: 6750}


def _published_layout(n: int) -> list[tuple[list[int], int, int]]:
    """The published code's bands as (frame indices, kernel, pre_shrink), oldest first, written
    from its five branches (stdstu12/YUME wan23/modules/model.py) with Python slicing."""
    u = list(range(n))
    if n <= 6:
        oldest = u[1:-1] if n - 2 > 0 else [u[-1]]
        return [([u[0]], 2, 1), (oldest, 4, 1), ([u[-1]], 2, 1)]
    if n <= 22:
        return [([u[0]], 2, 1), (u[1:-5], 8, 1), (u[-5:-3], 4, 1), (u[-3:], 2, 1)]
    if n <= 86:
        return [([u[0]], 2, 1), (u[1:-21], 16, 1), (u[-21:-5], 8, 1), (u[-5:-3], 4, 1), (u[-3:], 2, 1)]
    if n <= 342:
        return [
            ([u[0]], 4, 1),
            (u[1:-85], 32, 1),
            (u[-85:-21], 16, 1),
            (u[-21:-5], 8, 1),
            (u[-5:-3], 4, 1),
            (u[-3:], 2, 1),
        ]
    return [
        ([u[0]], 4, 1),
        (u[1:-341], 32, 4),
        (u[-341:-85], 32, 1),
        (u[-85:-21], 16, 1),
        (u[-21:-5], 8, 1),
        (u[-5:-3], 4, 1),
        (u[-3:], 2, 1),
    ]


@pytest.mark.parametrize("n,count", sorted(PUBLISHED_COUNTS_44x80.items()))
def test_yume_schedule_reproduces_published_token_counts(n, count):
    assert history_token_count("yume", n, (44, 80)) == count


@pytest.mark.parametrize("latent_hw", [(44, 80), (34, 60)])
def test_yume_schedule_matches_published_layout_for_every_supported_length(latent_hw):
    for n in range(1, 1017):
        plan = plan_history("yume", n, latent_hw)
        got = [(list(b.frames), b.kernel, b.pre_shrink) for b in plan.bands]
        assert got == _published_layout(n), f"layout differs at N={n}"
        want_tokens = sum(
            len(f) * math.ceil(math.ceil(latent_hw[0] / s) / k) * math.ceil(math.ceil(latent_hw[1] / s) / k)
            for f, k, s in _published_layout(n)
        )
        assert plan.tokens == want_tokens
        # temporal RoPE: one index per embedded frame, the current chunk right after
        assert [b.t0 for b in plan.bands] == [
            sum(len(p.frames) for p in plan.bands[:i]) for i in range(len(plan.bands))
        ]


def test_yume_positions_stay_inside_published_rope_range():
    for n in (1016, 1017, 5000, 100_000):
        assert plan_history("yume", n, (44, 80)).next_t + 8 <= 1024


def test_token_count_is_bounded_and_fast_at_100000_history_latents():
    start = time.perf_counter()
    big = history_token_count("yume", 100_000, (44, 80))
    assert time.perf_counter() - start < 0.5
    assert big == history_token_count("yume", 1016, (44, 80)) == 7430
    assert max(history_token_count("yume", n, (44, 80)) for n in range(1, 3000, 7)) == 7430


def test_tiny_schedule_stays_between_100_and_150_tokens_once_full():
    counts = [history_token_count("tiny", n, (8, 8)) for n in (20, 21, 100, 1000, 20_000, 100_000)]
    assert all(100 <= c <= 150 for c in counts)
    assert len(set(counts)) == 1  # flat: thinning keeps exactly the budget


def test_zero_history_gives_no_tokens():
    assert history_token_count("yume", 0, (44, 80)) == 0
    assert history_token_count("tiny", 0, (8, 8)) == 0


def test_thin_indices_keeps_budget_spread_over_range():
    idx = thin_indices(1, 10_001, 100)
    assert len(idx) == 100 and idx == sorted(set(idx))
    assert idx[0] < 200 and idx[-1] > 9_800  # covers the whole range, old and new


def test_thinning_is_stable_so_dropped_frames_are_never_needed_again():
    for budget in (1, 5, 8, 13):
        prev = set(thin_indices(1, 2, budget))
        for hi in range(3, 400):
            cur = set(thin_indices(1, hi, budget))
            assert len(cur) == min(budget, hi - 1)
            assert cur <= prev | {hi - 1}, f"budget {budget}, hi {hi}"
            prev = cur


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_frames_to_keep_is_stable_in_history_length(schedule):
    prev = set(frames_to_keep(schedule, 1))
    for n in range(2, 1400 if schedule == "yume" else 200):
        cur = set(frames_to_keep(schedule, n))
        assert cur <= prev | {n - 1}, f"N={n}"
        prev = cur


def test_append_history_keeps_exactly_the_planned_frames():
    frames = torch.arange(60.0).view(1, 60, 1, 1).expand(2, 60, 3, 3)
    kept, n = frames[:, :0], 0
    for step in (1, 2, 5, 3, 20, 29):
        kept = append_history("tiny", kept, n, frames[:, n : n + step])
        n += step
        assert kept[0, :, 0, 0].tolist() == [float(i) for i in frames_to_keep("tiny", n)]


@pytest.mark.parametrize("schedule, bound", [("tiny", 16), ("tiny-fine", 16), ("tiny-recall", 32)])
def test_once_thinned_many_lengths_keep_the_same_positions(schedule, bound):
    # what lets the env append the histories of worlds of different lengths together: the groups
    # stay few however long and however staggered the episodes (about twice the oldest band's budget)
    assert len({keep_positions(schedule, n, 2) for n in range(100, 5000)}) <= bound


@pytest.mark.parametrize("schedule", ["tiny", "yume"])
def test_band_columns_name_each_bands_frames_in_the_stored_history(schedule):
    for n in (1, 5, 23, 90, 400, 1500):
        kept = frames_to_keep(schedule, n)
        bands = plan_history(schedule, n, (1, 1)).bands
        assert band_columns(schedule, n, len(kept)) == tuple(tuple(kept.index(f) for f in b.frames) for b in bands)
        assert band_columns(schedule, n, n) == tuple(b.frames for b in bands)
        if len(kept) + 1 < n:
            assert band_columns(schedule, n, len(kept) + 1) is None


def test_tiny_recall_keeps_16_old_frames_at_4_tokens_within_288():
    counts = [history_token_count("tiny-recall", n, (8, 8)) for n in range(1, 400)]
    assert max(counts) == 2 * 64 + 4 * 16 + 8 * 4 + 16 * 4 == 288
    oldest = plan_history("tiny-recall", 200, (8, 8)).bands[0]
    assert len(oldest.frames) == 16 and oldest.grid == (2, 2)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="unknown TSCM schedule 'nope'.*tiny.*yume|unknown TSCM schedule 'nope'"):
        history_token_count("nope", 3, (8, 8))
