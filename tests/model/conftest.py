"""Fixtures of the model tests (helpers live in ``oscillators.py``)."""

import pytest
import torch
from oscillators import make_store

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and the test machine's 2 cores are shared


@pytest.fixture(scope="session")
def osc_store(tmp_path_factory) -> str:
    """3 training + 1 test trajectory of 12 oscillators, 200 frames, box 20 Å."""
    return make_store(tmp_path_factory.mktemp("osc") / "osc.zarr", n_traj=4, n_frames=200, test=1)
