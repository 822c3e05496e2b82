"""WanDiT against a plain, per-token re-statement of the published Wan2.2/Yume forward.

The reference below follows the published math step by step (per-token timestep embedding and
modulation, one global attention over [history | current] with explicit softmax, RoPE as float64
complex rotations, zero-padded text) and shares only the weights with the model under test. It
checks the parts the structural tests cannot: modulation order, RoPE pairing and axis split,
cross-attention norm, head modulation and unpatchify order.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from yume_env.model import WorldModelConfig, build_dit
from yume_env.model.tscm import plan_history

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster


def _ln(x, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def _rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _angles(pos, d):
    c = d // 2
    parts = [c - 2 * (c // 3), c // 3, c // 3]
    out = []
    for axis, pairs in enumerate(parts):
        dim = 2 * pairs
        inv = 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        out.append(pos[:, axis : axis + 1].double() * inv)
    return torch.cat(out, 1)  # (L, d/2)


def _rope(x, ang):  # x (L, heads, d)
    xc = torch.view_as_complex(x.double().reshape(*x.shape[:2], -1, 2))
    return torch.view_as_real(xc * torch.polar(torch.ones_like(ang), ang)[:, None]).flatten(2).float()


def _attn(q, k, v):  # (L, heads, d)
    s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
    return torch.einsum("hqk,khd->qhd", s.softmax(-1), v)


def _reference(m, x, t, ctx, hist):
    c = m.config
    heads, d = c.num_heads, c.head_dim
    toks, pos = [], []
    plan = plan_history(c.tscm_schedule, hist.shape[1], hist.shape[-2:])
    names = {
        2: "patch_embedding",
        4: "patch_embedding_2x",
        8: "patch_embedding_4x",
        16: "patch_embedding_8x",
        32: "patch_embedding_16x",
    }
    for band in plan.bands:
        u = hist[:, list(band.frames)][None]
        if band.pre_shrink > 1:
            u = F.pad(u, (0, -u.shape[-1] % 4, 0, -u.shape[-2] % 4))
            u = m.patch_embedding_2x_f(u)
        k = band.kernel
        u = getattr(m, names[k])(F.pad(u, (0, -u.shape[-1] % k, 0, -u.shape[-2] % k)))
        f, gh, gw = u.shape[2:]
        toks.append(u.flatten(2)[0].T)
        tt, hh, ww = torch.meshgrid(torch.arange(f) + band.t0, torch.arange(gh), torch.arange(gw), indexing="ij")
        pos.append(torch.stack([tt, hh, ww], -1).reshape(-1, 3))
    cur = m.patch_embedding(x)
    f, gh, gw = cur.shape[2:]
    toks.append(cur.flatten(2)[0].T)
    tt, hh, ww = torch.meshgrid(torch.arange(f) + plan.next_t, torch.arange(gh), torch.arange(gw), indexing="ij")
    pos.append(torch.stack([tt, hh, ww], -1).reshape(-1, 3))
    seq, pos = torch.cat(toks), torch.cat(pos)
    H, L = plan.tokens, seq.shape[0]
    t_tok = torch.cat([torch.zeros(H), torch.full((L - H,), float(t))]).double()
    half = c.freq_dim // 2
    sinus = torch.outer(t_tok, torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half))
    e = m.time_embedding(torch.cat([sinus.cos(), sinus.sin()], 1).float())  # (L, dim)
    e0 = m.time_projection(e).view(L, 6, c.dim)
    text = m.text_embedding(torch.cat([ctx[0], ctx.new_zeros(c.text_tokens - ctx.shape[1], ctx.shape[2])]))
    ang = _angles(pos, d)
    h = seq
    for blk in m.blocks:
        mod = blk.modulation[0] + e0  # (L, 6, dim)
        a = _ln(h) * (1 + mod[:, 1]) + mod[:, 0]
        sa = blk.self_attn
        q = _rope(_rms(sa.q(a), sa.norm_q.weight).view(L, heads, d), ang)
        k = _rope(_rms(sa.k(a), sa.norm_k.weight).view(L, heads, d), ang)
        v = sa.v(a).view(L, heads, d)
        h = h + sa.o(_attn(q, k, v).reshape(L, -1)) * mod[:, 2]
        ca = blk.cross_attn
        n3 = F.layer_norm(h, h.shape[-1:], blk.norm3.weight, blk.norm3.bias, 1e-6)
        cq = _rms(ca.q(n3), ca.norm_q.weight).view(L, heads, d)
        ck = _rms(ca.k(text), ca.norm_k.weight).view(-1, heads, d)
        h = h + ca.o(_attn(cq, ck, ca.v(text).view(-1, heads, d)).reshape(L, -1))
        h = h + blk.ffn(_ln(h) * (1 + mod[:, 4]) + mod[:, 3]) * mod[:, 5]
    hm = m.head.modulation[0] + e[:, None]  # (L, 2, dim)
    out = m.head.head(_ln(h) * (1 + hm[:, 1]) + hm[:, 0])[H:]
    out = out.view(f, gh, gw, 1, 2, 2, c.latent_channels)
    return torch.einsum("fhwpqrc->cfphqwr", out).reshape(c.latent_channels, f, gh * 2, gw * 2)[None]


@pytest.mark.parametrize("n_history", [1, 5, 13, 90])
def test_forward_matches_per_token_reference_of_published_model(n_history):
    c = WorldModelConfig.preset("yume-5b").replace(
        dim=48,
        ffn_dim=96,
        num_layers=2,
        num_heads=2,
        latent_channels=4,
        text_dim=24,
        text_tokens=6,
        memory_channels=8,
        memory_heads=2,
        memory_head_dim=8,
        height=128,
        width=192,
        latent_frames_per_chunk=2,
    )
    torch.manual_seed(0)
    m = build_dit(c).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.endswith("memory.gate"):  # published weights: the channel stream stays shut
                p.normal_(0.0, 0.2 if p.dim() == 1 else 0.1)
    g = torch.Generator().manual_seed(1)
    hist = torch.randn(4, n_history, 8, 12, generator=g)
    x = torch.randn(1, 4, 2, 8, 12, generator=g)
    ctx = torch.randn(1, 3, 24, generator=g)
    t = 637.0
    with torch.no_grad():
        want = _reference(m, x, t, ctx, hist)
        got = m(x, torch.tensor([t]), ctx, m.encode_history([hist], [m.update_memory(None, hist)]))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
