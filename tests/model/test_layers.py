"""The building blocks' inference shortcuts compute what their general path computes, to the bit."""

import torch

from mdforecast.model.graph import Graph
from mdforecast.model.layers import Interaction, RadialBasis, edge_features

torch.set_num_threads(1)


def test_radial_basis_in_place_at_inference_equals_the_differentiable_path():
    basis = RadialBasis(8.5, 25)
    d = torch.linspace(0.05, 9.0, 4001)  # past the cutoff too, where the envelope is zero
    with torch.no_grad():
        fast = basis(d)
    slow = basis(d.clone().requires_grad_(True))
    assert slow.requires_grad and torch.equal(fast, slow.detach())
    assert fast[d >= 8.5].abs().max() == 0 and fast.max() > 0.5


def test_interaction_without_vectors_is_the_interaction_with_zero_vectors():
    torch.manual_seed(0)
    n, e = 30, 200
    layer = Interaction(16, 8, 12, avg_neighbors=6.0)
    edge_index = torch.stack([torch.randint(0, n, (e,)), torch.randint(0, n, (e,))])
    graph = Graph(edge_index, torch.randn(e, 3) * 2.0, n)
    radial, unit = edge_features(graph, RadialBasis(6.0, 12))
    h = torch.randn(n, 16)
    with torch.no_grad():
        h0, v0 = layer(h, torch.zeros(n, 8, 3), graph, layer.filters(radial), unit)
        h1, v1 = layer(h, None, graph, layer.filters(radial), unit)
    assert torch.equal(h0, h1) and torch.equal(v0, v1) and v1.abs().max() > 0.1
