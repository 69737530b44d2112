"""The fixed-step solvers against torchdiffeq's (the reference they are written after), to the bit, and the
latent ODE's solution against the exact one of a linear field."""

import pytest
import torch

from mdforecast.model.ode import SOLVERS, integrate

torchdiffeq = pytest.importorskip("torchdiffeq")

torch.set_num_threads(1)


def field(state):
    """A nonlinear autonomous field on a (scalars, vectors) state, like the latent ODE's."""
    h, v = state
    return torch.tanh(h @ torch.linspace(-1, 1, 36, dtype=h.dtype).reshape(6, 6)) - 0.3 * h, v * torch.sin(h[:, :4, None]) - 0.1 * v


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_solvers_are_torchdiffeqs_to_the_bit(solver, dtype):
    torch.manual_seed(0)
    h, v = torch.randn(5, 6, dtype=dtype), torch.randn(5, 4, 3, dtype=dtype)
    grid = torch.linspace(0.0, 1.0, 5, dtype=dtype)
    hs, vs = integrate(field, (h, v), grid, solver)
    ref_h, ref_v = torchdiffeq.odeint(lambda t, y: field(y), (h, v), grid, method=solver)
    assert hs.shape == (5, 5, 6) and vs.shape == (5, 5, 4, 3)
    assert torch.equal(hs, ref_h) and torch.equal(vs, ref_v)
    assert (hs[-1] - h).abs().max() > 0.05  # the state moved


@pytest.mark.parametrize("solver,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_solvers_converge_at_their_order_on_a_linear_field(solver, order):
    y0 = (torch.tensor([1.0], dtype=torch.float64),)
    errors = []
    for steps in (8, 16):
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        (y,) = integrate(lambda s: (-2.0 * s[0],), y0, grid, solver)
        errors.append(abs(float(y[-1, 0]) - float(torch.exp(torch.tensor(-2.0, dtype=torch.float64)))))
    assert errors[0] / errors[1] == pytest.approx(2 ** order, rel=0.2)
