"""The level fusion against its equations written out with einsum (one contraction per term)."""

import math

import torch

from mdforecast.model.fusion import LevelFusion

torch.set_num_threads(1)


def reference(fusion: LevelFusion, h: torch.Tensor, v: torch.Tensor, depth: torch.Tensor):
    """w_p = softmax_{p ≤ d}((W_q h_d)·(W_k h_p + e_p)/√F), s = Σ_p w_p A_p h_p, V = Σ_p w_p B_p v_p."""
    finest = h[torch.arange(h.shape[0]), depth]
    keys = fusion.key(h) + fusion.level_embedding[:, None, :]
    scores = torch.einsum("qnf,qlnf->qln", fusion.query(finest), keys) / math.sqrt(fusion.features)
    scores = scores.masked_fill((torch.arange(fusion.levels)[None, :] > depth[:, None])[..., None], float("-inf"))
    w = torch.softmax(scores, dim=1)
    s = torch.einsum("qln,qlgf,qlnf->qng", w, fusion.scalar_values.expand(len(h), -1, -1, -1), h)
    vec = torch.einsum("qln,ldc,qlncx->qndx", w, fusion.vector_values, v)
    return s, vec


def test_level_fusion_is_its_equations():
    torch.manual_seed(0)
    q, levels, n, f, c = 7, 3, 11, 16, 8
    fusion = LevelFusion(levels, f, c).double()
    with torch.no_grad():
        fusion.level_embedding.normal_()
    depth = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    h = torch.randn(q, levels, n, f, dtype=torch.float64)
    v = torch.randn(q, levels, n, c, 3, dtype=torch.float64)
    live = (torch.arange(levels)[None, :] <= depth[:, None]).to(h.dtype)  # levels beyond the depth are zeros
    h, v = h * live[:, :, None, None], v * live[:, :, None, None, None]
    s, vec = fusion(h, v, depth)
    expected_s, expected_vec = reference(fusion, h, v, depth)
    torch.testing.assert_close(s, expected_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(vec, expected_vec, rtol=1e-12, atol=1e-12)
    assert s[0].abs().max() > 0.1 and vec[0].abs().max() > 0.1
    # depth 0 reads level 0 alone: s = A_0 h_0
    torch.testing.assert_close(s[0], h[0, 0] @ fusion.scalar_values[0].T, rtol=1e-12, atol=1e-12)
