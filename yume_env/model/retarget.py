"""`retarget`: a trained world with another memory layout, to fine-tune it there.

Three settings change how a world reads its history without touching its blocks: the TSCM
schedule (which history latents become tokens at which patch size, `yume_env.model.tscm`),
pose memory (each history frame's pose added to its tokens, `yume_env.model.pose_memory`) and
recalled views (old views found by pose, read at full detail, `yume_env.model.recall`). A
world moves to other settings by keeping every weight both DiTs share:

- a history embedder the old schedule lacked starts from the trained current-chunk patch
  embedding, resampled to its kernel (`WanDiT.init_history_embedders`, as a fresh model does), so
  a kernel-k token starts as the mean of the tokens it covers; one the new schedule drops is left out;
- a new pose embedding starts with a zero output, so the moved world generates what it did.

The moved world runs at once but has never seen its new layout: fine-tune it
(`yume-env train unroll --tscm-schedule NAME --pose-memory`).
"""

from __future__ import annotations

from yume_env.model.dit import build_dit
from yume_env.model.tscm import get_schedule

NEW_PARTS = ("patch_embedding_", "pose_embedding.")  # the weights a retargeted DiT may lack


def retarget(
    world, *, tscm_schedule: str | None = None, pose_memory: bool | None = None, recall_frames: int | None = None
):
    """A new `WorldModel` like `world` (same VAE, text, task head, start frames; copied DiT weights)
    with the given TSCM schedule, pose memory and recalled views (None: the world's own). `world`
    is unchanged. Recall adds no weights (recalled views go through the patch and pose embeddings)."""
    from yume_env.model.pipeline import WorldModel

    changes = {}
    if tscm_schedule is not None:
        get_schedule(tscm_schedule)  # a clear error for an unknown name
        changes["tscm_schedule"] = tscm_schedule
    if pose_memory is not None:
        changes["pose_memory"] = bool(pose_memory)
    if recall_frames is not None:
        changes["recall_frames"] = int(recall_frames)
    config = world.config.replace(**changes)
    old = world.dit
    dit = build_dit(config, device="cpu").to(world.device)
    own, trained = dit.state_dict(), old.state_dict()
    shared = {k: v for k, v in trained.items() if k in own}
    missing = sorted(set(own) - set(shared))
    if any(not k.startswith(NEW_PARTS) for k in missing):
        raise ValueError(
            f"retarget: the DiT's weights {missing} are new but are not history or pose embedders; "
            "the two configs differ in more than the memory layout"
        )
    dit.load_state_dict({**own, **shared})
    embedders = {k.rsplit(".", 1)[0] for k in missing if k.startswith("patch_embedding_")}
    dit.init_history_embedders(embedders)  # after the load: from the trained patch embedding
    dit = dit.to(dtype=next(old.parameters()).dtype)
    return WorldModel(config, dit, world.vae, world._text, world.task_head, world.start_frames)
