"""Minimum-image neighbour lists: both functions against a brute-force search over periodic images, and the
default (vesin cell lists) against the all-pairs reference on bigger random boxes."""

import itertools

import numpy as np
import pytest
import torch

from mdforecast.errors import InputError
from mdforecast.model.graph import batch_graphs, radius_graph, radius_graph_all_pairs


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


@pytest.mark.parametrize("neighbor_fn", [radius_graph, radius_graph_all_pairs])
@pytest.mark.parametrize("kind", BOXES)
def test_radius_graph_matches_brute_force(kind, neighbor_fn):
    rng = np.random.default_rng(1)
    box = BOXES[kind]
    x = rng.uniform(-5, 25, (40, 3)) if box is not None else rng.uniform(0, 10, (40, 3))  # unwrapped: outside the cell
    edges, vectors = neighbor_fn(torch.tensor(x), 4.0, None if box is None else torch.tensor(box))
    expected = brute_force(x, 4.0, box)
    got = {(int(j), int(i)): v for (j, i), v in zip(edges.T.tolist(), vectors.numpy())}
    assert set(got) == set(expected) and len(expected) > 20
    for key, vec in expected.items():
        np.testing.assert_allclose(got[key], vec, atol=1e-9)


@pytest.mark.parametrize("neighbor_fn", [radius_graph, radius_graph_all_pairs])
def test_edge_lengths_accepts_edges_and_rejects_large_cutoff(neighbor_fn):
    x = torch.rand(10, 3, dtype=torch.float64) * 8
    e1, v1 = neighbor_fn(x, 3.0, torch.tensor([8.0, 8.0, 8.0], dtype=torch.float64))
    e2, v2 = neighbor_fn(x, 3.0, torch.diag(torch.tensor([8.0, 8.0, 8.0], dtype=torch.float64)))
    assert torch.equal(e1, e2) and torch.equal(v1, v2)
    with pytest.raises(InputError, match="half the box height"):
        neighbor_fn(x, 4.5, torch.tensor([8.0, 8.0, 8.0], dtype=torch.float64))


def skewed_box(rng: np.random.Generator) -> np.ndarray:
    """A random triclinic box (rows a, b, c; lower triangular, tilts up to half an edge), edges 14–18 Å."""
    box = np.diag(rng.uniform(14, 18, 3))
    box[1, 0], box[2, 0], box[2, 1] = rng.uniform(-0.5, 0.5, 3) * box[[0, 0, 1], [0, 0, 1]]
    return box


def sorted_edges(edges: torch.Tensor, vectors: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge keys ``j · n + i`` in increasing order and their vectors (float64)."""
    key = (edges[0] * n + edges[1]).numpy()
    order = np.argsort(key)
    return key[order], vectors.detach().double().numpy()[order]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kind", ["triclinic", "orthorhombic", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_default_matches_all_pairs_reference(kind, seed, dtype):
    """Same edge sets and vectors to 1e-5 Å at water density (0.1 atoms/Å³); periodic positions unwrapped
    (up to one box outside the cell)."""
    rng = np.random.default_rng(seed)
    box = {"triclinic": skewed_box(rng), "orthorhombic": np.diag(rng.uniform(14, 18, 3)), "none": None}[kind]
    n = int(0.1 * (16.0 ** 3 if box is None else abs(np.linalg.det(box))))
    frac = rng.uniform(0, 1, (n, 3)) + (0 if box is None else rng.integers(-1, 2, (n, 3)))
    x = torch.tensor(frac @ (np.eye(3) * 16.0 if box is None else box), dtype=dtype)
    b = None if box is None else torch.tensor(box, dtype=dtype)
    got_key, got = sorted_edges(*radius_graph(x, 5.0, b), n)
    key, expected = sorted_edges(*radius_graph_all_pairs(x, 5.0, b), n)
    assert len(key) > 10 * n
    if dtype == torch.float32:  # pairs within rounding of the cutoff may fall on either side
        keep, got_keep = (np.abs(np.linalg.norm(v, axis=1) - 5.0) > 1e-4 for v in (expected, got))
        key, expected, got_key, got = key[keep], expected[keep], got_key[got_keep], got[got_keep]
    np.testing.assert_array_equal(got_key, key)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_vectors_carry_gradients_to_positions_and_box():
    rng = np.random.default_rng(5)
    box = torch.tensor(skewed_box(rng), requires_grad=True)
    x = torch.tensor(rng.uniform(0, 1, (300, 3)) @ box.detach().numpy(), requires_grad=True)
    grads = []
    for neighbor_fn in (radius_graph, radius_graph_all_pairs):
        _, vectors = neighbor_fn(x, 5.0, box)
        grads.append(torch.autograd.grad((vectors ** 2).sum(-1).sqrt().sum(), (x, box)))
    for got, expected in zip(*grads):
        assert expected.abs().max() > 1.0  # a gradient that exists
        torch.testing.assert_close(got, expected)


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


def test_edge_order_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(7)
    box = torch.tensor(skewed_box(rng))
    x = torch.tensor(rng.uniform(0, 1, (400, 3))) @ box
    threads = torch.get_num_threads()
    try:
        graphs = []
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            graphs.append(radius_graph(x, 5.0, box))
    finally:
        torch.set_num_threads(threads)
    for edges, vectors in graphs[1:]:
        assert torch.equal(edges, graphs[0][0]) and torch.equal(vectors, graphs[0][1])
