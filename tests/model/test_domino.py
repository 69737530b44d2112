"""The assembled model: symmetries, continuous time, lazy segment solving, hierarchy bookkeeping."""

import dataclasses

import numpy as np
import pytest
import torch

from mdforecast.errors import InputError
from mdforecast.forecasters import DominoForecaster, Observation
from mdforecast.model import Domino, DominoConfig, Normalisation, domino, layers
from mdforecast.model.graph import batch_graphs, radius_graph, radius_graph_all_pairs
from mdforecast.model.hierarchy import Hierarchy
from mdforecast.testing import assert_equivariant
from oscillators import oscillators, topology

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and the test machine's 2 cores are shared


def random_forecaster(levels: int = 3, vae: bool = False, checkpoint: bool = False) -> DominoForecaster:
    strides = {1: (1,), 2: (6, 1), 3: (12, 4, 1)}[levels]
    config = DominoConfig(observe=30, horizon=24, strides=strides, features=16, vectors=8, encoder_layers=1,
                          radial=8, steps=3, lags=(1, 5), context=10, cutoff=6.0, checkpoint=checkpoint, vae=vae)
    torch.manual_seed(0)
    model = Domino(config, Normalisation(1.0, (0.2, 0.6, 0.6), 3.0), ["A", "B"]).double()
    for p in model.decoder.parameters():  # the decoder starts at zero (= persistence); make it act
        torch.nn.init.normal_(p, std=0.5)
    return DominoForecaster(model, meta={"dt_ps": 0.1})


def observation(box: float | None = 20.0, n_atoms: int = 14) -> Observation:
    pos = oscillators(n_atoms, 40, box=box, seed=3)[:30].astype(np.float64)
    boxes = None if box is None else np.full((30, 3), box)
    return Observation(positions=pos, topology=topology(n_atoms), dt_ps=0.1, boxes=boxes)


@pytest.mark.parametrize("levels,box", [(3, 20.0), (3, None), (1, 20.0)])
def test_rotation_translation_permutation_equivariance(levels, box):
    forecaster = random_forecaster(levels)
    obs = observation(box)
    times = np.array([30, 33.5, 41, 53])
    moved = np.abs(forecaster.predict(obs, times) - obs.positions[-1]).max()
    assert moved > 0.1  # the forecast is not persistence, so the check has teeth
    errors = assert_equivariant(forecaster, obs, times, atol=1e-5)
    assert set(errors) == {"rotation", "translation", "permutation"}
    forecaster.model.float()  # the dtype models are trained and run in
    assert_equivariant(forecaster, obs, times, atol=1e-5)


TRICLINIC = np.array([[20.0, 0.0, 0.0], [6.0, 19.0, 0.0], [-5.0, 4.0, 21.0]])


@pytest.mark.parametrize("box", ["cubic", "triclinic", None])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forecasts_do_not_depend_on_the_neighbour_function(box, dtype):
    """The default (vesin cell lists) and the all-pairs reference list edges in different orders: the
    forecasts agree to 1e-5 Å."""
    forecaster = random_forecaster()
    forecaster.model.to(dtype)
    obs = observation(None if box is None else 20.0, n_atoms=60)
    if box == "triclinic":
        obs = dataclasses.replace(obs, boxes=np.repeat(TRICLINIC[None], len(obs.positions), 0))
    boxes = None if obs.boxes is None else torch.as_tensor(obs.boxes[-1:])
    graph = batch_graphs(torch.as_tensor(obs.positions[-1:]), 6.0, boxes)
    assert graph.n_edges > 5 * 60  # a real graph: several neighbours per atom
    times = np.array([30, 33.5, 41, 53])
    forecasts = []
    for neighbor_fn in (radius_graph, radius_graph_all_pairs):
        forecaster.model.neighbor_fn = neighbor_fn
        forecasts.append(forecaster.predict(obs, times))
    assert np.abs(forecasts[0] - obs.positions[-1]).max() > 0.1  # not persistence
    np.testing.assert_allclose(forecasts[0], forecasts[1], atol=1e-5, rtol=0)


def test_assert_equivariant_catches_a_broken_model():
    class Absolute(DominoForecaster):  # adds a fixed absolute vector: not rotation-equivariant
        def predict(self, observation, times):
            return super().predict(observation, times) + np.array([1.0, 0.0, 0.0], dtype=np.float32)

    with pytest.raises(AssertionError, match="rotation"):
        assert_equivariant(Absolute(random_forecaster().model), observation(), np.array([31.0]))


def test_continuous_time_and_horizon_bounds():
    forecaster, obs = random_forecaster(), observation()
    t = np.array([40.0, 40.25, 40.5, 41.0])
    p = forecaster.predict(obs, t)
    # real-valued times interpolate smoothly between the integer frames
    assert np.abs(p[1] - p[0]).max() < np.abs(p[3] - p[0]).max() + 1e-9
    np.testing.assert_allclose(p[2], forecaster.predict(obs, np.array([40.5]))[0], atol=1e-6)
    with pytest.raises(InputError, match="must be finite and ≥ 30"):
        forecaster.predict(obs, np.array([29.0]))
    with pytest.raises(InputError, match="must be finite"):
        forecaster.predict(obs, np.array([31.0, np.nan]))


def test_times_past_the_horizon_roll_out_from_the_forecast():
    forecaster, obs = random_forecaster(), observation()  # observe 30, horizon 24: one leg is frames 30…53
    times = np.array([31.0, 53.0, 54.0, 60.5, 77.0, 78.0, 100.0])
    p = forecaster.predict(obs, times)
    np.testing.assert_array_equal(p[:2], forecaster.predict(obs, times[:2]))  # the first leg is untouched
    # the second leg observes frames [24, 54): observed 24…29, then the first leg's forecast 30…53
    leg = np.concatenate([obs.positions[24:], forecaster.predict(obs, np.arange(30.0, 54.0))])
    second = Observation(positions=leg, topology=obs.topology, dt_ps=0.1, start=24, boxes=obs.boxes[:1].repeat(30, 0))
    np.testing.assert_allclose(p[2:5], forecaster.predict(second, times[2:5]), atol=1e-10)
    leg = np.concatenate([second.positions[24:], forecaster.predict(second, np.arange(54.0, 78.0))])
    third = Observation(positions=leg, topology=obs.topology, dt_ps=0.1, start=48, boxes=second.boxes)
    np.testing.assert_allclose(p[5:], forecaster.predict(third, times[5:]), atol=1e-10)
    assert np.abs(p[5] - p[4]).max() > 1e-3  # a new leg is a new forecast, not a copy of the last frame
    np.testing.assert_array_equal(forecaster.predict(obs, times[2:3]), p[2:3])  # cached legs give the same answer


def test_one_far_frame_solves_one_segment_per_level():
    forecaster, obs = random_forecaster(), observation()
    solved = []
    for level, ode in enumerate(forecaster.model.odes):
        original = ode.solve
        ode.solve = lambda h, v, g, original=original, level=level: (solved.append((level, g.n_nodes)), original(h, v, g))[1]
    forecaster.predict(obs, np.array([50.0]))
    assert solved == [(0, 14), (1, 14), (2, 14)]
    solved.clear()
    forecaster.predict(observation(), np.arange(30, 54))  # the whole horizon: 1 + 2 + 6 segments
    assert [n // 14 for _, n in solved] == [1, 2, 6]
    solved.clear()
    forecaster.predict(obs, np.arange(30, 54))  # the same observation again: only what frame 50 did not need
    assert [(level, n // 14) for level, n in solved] == [(1, 1), (2, 6)]


def _count_solves(forecaster: DominoForecaster) -> list[int]:
    """Segments solved per level, counted as ``forecaster`` predicts."""
    solved = [0] * len(forecaster.model.odes)
    for level, ode in enumerate(forecaster.model.odes):
        original = ode.solve
        def counting(h, v, g, original=original, level=level):
            solved[level] += g.n_nodes // 14
            return original(h, v, g)
        ode.solve = counting
    return solved


def test_predict_batch_by_batch_solves_each_coarse_segment_once_and_gives_the_forecast_of_one_call():
    """The encoding and the coarse levels are kept per observation: batches of 5 frames (which split the
    finest 4-frame segments) solve level 0 once and level 1's two segments once, and forecast what one call does."""
    obs, times = observation(), np.arange(30.0, 53.5, 0.5)  # one leg: frames 30 … 53
    expected = random_forecaster().predict(obs, times)
    batched = random_forecaster()
    solved = _count_solves(batched)
    encoded = []
    encoder = batched.model.encoder.forward
    batched.model.encoder.forward = lambda *args: encoded.append(1) or encoder(*args)
    got = np.concatenate([batched.predict(obs, times[lo:lo + 10]) for lo in range(0, len(times), 10)])
    assert solved[:2] == [1, 2] and solved[2] > 6 and len(encoded) == 1
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.abs(got - obs.positions[-1]).max() > 0.1  # not persistence
    other = observation(n_atoms=14)  # another observation (equal values, new object) is encoded and solved anew
    batched.predict(other, times[:2])
    assert solved[:2] == [2, 3] and len(encoded) == 2


def test_unknown_atom_kind_is_a_clear_error():
    forecaster, obs = random_forecaster(), observation()
    types = topology(14).types.astype(object)
    types[0] = "Xe"
    bad = Observation(positions=obs.positions, topology=dataclasses.replace(topology(14), types=types), dt_ps=0.1,
                      boxes=obs.boxes)
    with pytest.raises(InputError, match="Xe"):
        forecaster.predict(bad, np.array([31.0]))


def test_vae_is_deterministic_at_inference():
    forecaster, obs = random_forecaster(vae=True), observation()
    t = np.array([35.0])
    np.testing.assert_array_equal(forecaster.predict(obs, t), forecaster.predict(obs, t))


def test_hierarchy_layout_and_errors():
    h = Hierarchy(8000, (400, 20, 1))
    assert h.spans == (8000, 400, 20) and h.outputs == (20, 20, 20) and h.segments == (1, 20, 400)
    np.testing.assert_array_equal(h.segment_of(1, np.array([0.5, 400, 400.5, 8000])), [0, 0, 1, 19])
    np.testing.assert_array_equal(h.output_times(2, 3), np.arange(61, 81))
    plan = h.plan(np.array([0, 0]), np.array([2500.5, 2510.0]), np.array([2, 2]))
    assert [len(level.index) for level in plan.levels] == [1, 1, 1]  # same finest segment (2500, 2520]
    assert plan.levels[2].index.tolist() == [125] and plan.levels[1].index.tolist() == [6]
    np.testing.assert_allclose(plan.levels[2].parent_tau[1], [100 / 400])  # starts 100 frames into level 1
    np.testing.assert_allclose(plan.tau[2], [0.5 / 20, 10 / 20])
    with pytest.raises(InputError, match="does not divide"):
        Hierarchy(300, (40, 1))
    with pytest.raises(InputError, match="does not divide"):
        Hierarchy(300, (15, 4))


def _small_chunks(monkeypatch) -> None:
    """Message passing 7 edges at a time, decoding 2 queries at a time (of 14 atoms, 3 levels, F 16, C 8)."""
    monkeypatch.setattr(layers, "EDGE_CHUNK_BYTES", 4 * (16 + 3 * 8) * 7)
    monkeypatch.setattr(domino, "DECODE_BYTES", 4 * 14 * 3 * (16 + 3 * 8) * 2)


def test_checkpointing_and_chunking_give_the_same_gradients(monkeypatch):
    """Recomputing the encoder's, the ODEs' and the decoder's activations in the backward pass, with edges and
    queries in chunks, gives the gradients of one pass that keeps them all."""
    from mdforecast.model import Window

    grads = []
    for small in (False, True):
        if small:
            _small_chunks(monkeypatch)
        model = random_forecaster(checkpoint=small).model
        assert model.decode_chunk(14) == (2 if small else 2**22 // (4 * 14 * 3 * 40))
        obs = observation()
        window = Window(model.kind_index(topology(14)), torch.as_tensor(obs.positions[-1])[None],
                        torch.as_tensor(np.random.default_rng(0).normal(size=(1, 14, 3, 3))),
                        torch.eye(3, dtype=torch.float64)[None] * 20)
        positions, _ = model.train()(window, np.zeros(5, np.int64), np.array([3.0, 10.0, 20.0, 7.5, 1.0]),
                                     np.array([2, 1, 2, 0, 2]))
        positions.square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0])
    assert grads[0].abs().max() > 0


def test_chunked_edges_and_queries_give_the_same_forecast(monkeypatch):
    forecaster, obs = random_forecaster(), observation()
    times = np.array([30, 31, 33.5, 41, 47, 53])
    expected = forecaster.predict(obs, times)
    _small_chunks(monkeypatch)
    np.testing.assert_allclose(forecaster.predict(obs, times), expected, atol=1e-9, rtol=0)


def test_atom_kinds_are_elements_by_default_then_types_then_names():
    from mdforecast.model import atom_kinds
    from mdforecast.topology import Topology

    names = np.array(["OW", "HW1", "HW2"])
    base = dict(names=names, resnames=np.array(["SOL"] * 3), resids=np.array([1, 1, 1]))
    typed = Topology(**base, types=np.array(["opls_111", "opls_112", "opls_112"]), elements=np.array(["O", "H", "H"]))
    assert atom_kinds(typed).tolist() == ["O", "H", "H"]
    assert atom_kinds(typed, "types").tolist() == ["opls_111", "opls_112", "opls_112"]
    assert atom_kinds(Topology(**base, elements=np.array(["o", "H ", "h"]))).tolist() == ["O", "H", "H"]
    assert atom_kinds(Topology(**base, types=np.array(["OW", "HW", "HW"]),
                               elements=np.array(["", "", ""]))).tolist() == ["OW", "HW", "HW"]
    assert atom_kinds(Topology(**base)).tolist() == ["OW", "HW1", "HW2"]
    with pytest.raises(InputError, match="--kinds"):
        atom_kinds(Topology(**base), "elements")


def test_check_refuses_other_atom_kinds_and_frame_times_and_exposes_layout():
    forecaster = random_forecaster()
    assert (forecaster.observe, forecaster.horizon) == (30, 24)
    forecaster.check(topology(14), 0.1)
    forecaster.check(dataclasses.replace(topology(4), types=np.array(["a", "b", "A", "B"])), 0.1)  # any case
    with pytest.raises(InputError, match="vocabulary"):
        forecaster.check(dataclasses.replace(topology(4), types=np.array(["Ar"] * 4)), 0.1)
    with pytest.raises(InputError, match="frames are 1 ps apart but the model was trained on frames 0.1 ps apart"):
        forecaster.check(topology(14), 1.0)
    with pytest.raises(InputError, match="--stride 5"):
        forecaster.check(topology(14), 0.02)
    with pytest.raises(InputError, match="--dt 0.1"):
        forecaster.check(topology(14), None)
    DominoForecaster(forecaster.model).check(topology(14), None)  # a model file that does not record its frame time


def test_memory_bounds_grow_with_the_system_and_say_so():
    """A small system is one chunk of edges and hundreds of lead times at once; a 48,000-atom one is chunked,
    and the one-line note says how."""
    from mdforecast.forecasters.domino import segments_per_pass

    forecaster = random_forecaster()  # F 16, C 8, 3 levels, 3 neighbours on average
    model = forecaster.model
    assert model.memory_note(14) is None and forecaster.memory_note(14) is None
    assert model.decode_chunk(14) > 500 and segments_per_pass(14) == 32
    assert model.decode_chunk(48_000) == 1 and segments_per_pass(48_000) == 5 and segments_per_pass(10**7) == 1
    note = forecaster.memory_note(48_000)
    assert note == ("48,000 atoms: message passing in chunks of 104,857 edges, decoding 1 lead time(s) at a time, "
                    "5 finest segment(s) per pass")
