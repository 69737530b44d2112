"""Minimum-image neighbour lists against a brute-force search over periodic images."""

import itertools

import numpy as np
import pytest
import torch

from mdforecast.errors import InputError
from mdforecast.model.graph import batch_graphs, radius_graph


def brute_force(x: np.ndarray, cutoff: float, box: np.ndarray | None) -> dict[tuple[int, int], np.ndarray]:
    """Every (j, i) pair and its shortest image vector x_j − x_i, over 9³ images."""
    shifts = [np.zeros(3)] if box is None else [np.array(s) @ box for s in itertools.product(range(-4, 5), repeat=3)]
    out = {}
    for i, j in itertools.permutations(range(len(x)), 2):
        vecs = np.array([x[j] - x[i] + s for s in shifts])
        best = vecs[np.argmin((vecs ** 2).sum(1))]
        if (best ** 2).sum() < cutoff ** 2:
            out[(j, i)] = best
    return out


BOXES = {"none": None, "orthorhombic": np.diag([9.0, 10.0, 11.0]),
         "triclinic": np.array([[10.0, 0.0, 0.0], [3.0, 9.5, 0.0], [-2.5, 2.0, 10.5]])}


@pytest.mark.parametrize("kind", BOXES)
def test_radius_graph_matches_brute_force(kind):
    rng = np.random.default_rng(1)
    box = BOXES[kind]
    x = rng.uniform(-5, 25, (40, 3)) if box is not None else rng.uniform(0, 10, (40, 3))  # unwrapped: outside the cell
    edges, vectors = radius_graph(torch.tensor(x), 4.0, None if box is None else torch.tensor(box))
    expected = brute_force(x, 4.0, box)
    got = {(int(j), int(i)): v for (j, i), v in zip(edges.T.tolist(), vectors.numpy())}
    assert set(got) == set(expected) and len(expected) > 20
    for key, vec in expected.items():
        np.testing.assert_allclose(got[key], vec, atol=1e-9)


def test_edge_lengths_accepts_edges_and_rejects_large_cutoff():
    x = torch.rand(10, 3, dtype=torch.float64) * 8
    e1, v1 = radius_graph(x, 3.0, torch.tensor([8.0, 8.0, 8.0], dtype=torch.float64))
    e2, v2 = radius_graph(x, 3.0, torch.diag(torch.tensor([8.0, 8.0, 8.0], dtype=torch.float64)))
    assert torch.equal(e1, e2) and torch.equal(v1, v2)
    with pytest.raises(InputError, match="half the box height"):
        radius_graph(x, 4.5, torch.tensor([8.0, 8.0, 8.0], dtype=torch.float64))


def test_batch_graphs_offsets_and_injected_neighbor_fn():
    calls = []

    def spy(positions, cutoff, box):
        calls.append(box)
        return radius_graph(positions, cutoff, box)

    x = torch.rand(3, 6, 3, dtype=torch.float64) * 4
    graph = batch_graphs(x, 2.5, None, spy)
    assert len(calls) == 3 and graph.n_nodes == 18
    for k in range(3):  # no edge crosses structures
        inside = (graph.edge_index[1] // 6) == k
        assert ((graph.edge_index[0][inside] // 6) == k).all()
