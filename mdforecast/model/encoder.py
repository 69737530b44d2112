"""The equivariant encoder: observed frames → per-atom latent state (scalars and vectors).

Inputs are invariant atom kinds and equivariant displacement vectors taken from the observed frames
(:func:`~mdforecast.model.features.input_vectors`: recent displacements at a few lags and the offset from
the observed mean position), each divided by its training-data RMS. A stack of PaiNN interactions on the
graph of the last observed frame mixes them between neighbours.

.. math::
    h_i^{(0)} = E[k_i] + W_n\\,|u_i|, \\qquad v_i^{(0)} = W_u u_i, \\qquad
    (h, v) \\leftarrow \\mathrm{Interaction}_l(h, v; G), \\ l = 1..L_{enc}, \\qquad h \\leftarrow \\mathrm{LayerNorm}(h)

With ``vae=True`` the scalars are a Gaussian posterior: :math:`h = \\mu + \\sigma\\epsilon` while training
(:math:`\\mu` at inference) and the KL divergence to :math:`\\mathcal N(0, I)` is returned.

Shapes: B windows, N atoms, M = B·N nodes, K input vectors, F features, C vector channels.
"""

from __future__ import annotations

import torch
from torch import nn

from .graph import Graph
from .layers import Interaction, RadialBasis, VectorLinear, edge_features, recompute, vector_norm

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """Encodes a window. Args: kinds (vocabulary size), inputs K, features F, vectors C, layers, radial
    basis, mean neighbour count, vae, checkpoint (recompute each interaction's edge activations in the
    backward pass instead of keeping them: O(N) less memory per window).

    Shapes: ``kinds (M,) int64, inputs (M, K, 3), graph -> h (M, F), v (M, C, 3), kl ()``.
    """

    def __init__(self, kinds: int, inputs: int, features: int, vectors: int, layers: int, basis: RadialBasis,
                 avg_neighbors: float, vae: bool = False, checkpoint: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(kinds, features)
        self.norms = nn.Linear(inputs, features, bias=False)
        self.lift = VectorLinear(inputs, vectors)
        self.basis = basis
        self.layers = nn.ModuleList(Interaction(features, vectors, basis.n, avg_neighbors) for _ in range(layers))
        self.out = nn.LayerNorm(features)
        self.vae = nn.Linear(features, 2 * features) if vae else None
        self.checkpoint = checkpoint

    def forward(self, kinds: torch.Tensor, inputs: torch.Tensor, graph: Graph,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.embed(kinds) + self.norms(vector_norm(inputs))
        v = self.lift(inputs)
        radial, unit = edge_features(graph, self.basis)
        for layer in self.layers:
            step = lambda h, v, layer=layer: layer(h, v, graph, layer.filters(radial), unit)  # noqa: E731
            h, v = recompute(self.checkpoint, step, h, v)
        h = self.out(h)
        kl = h.new_zeros(())
        if self.vae is not None:
            mean, log_var = self.vae(h).chunk(2, dim=-1)
            log_var = log_var.clamp(-10.0, 10.0)
            kl = -0.5 * (1 + log_var - mean ** 2 - log_var.exp()).sum(-1).mean()
            h = mean
            if self.training:
                noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
                h = mean + noise * (0.5 * log_var).exp()
        return h, v, kl

    def __repr__(self) -> str:
        return (f"Encoder(kinds={self.embed.num_embeddings}, inputs={self.lift.weight.shape[1]}, "
                f"layers={len(self.layers)}, vae={self.vae is not None})")
