"""Two DDP processes (torchrun, gloo, CPU) reproduce one process training on the same samples."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mdforecast.training import resolve_options, train
from oscillators import TINY


@pytest.mark.slow
def test_two_gloo_processes_match_one(osc_store, tmp_path):
    options = {**TINY, "epochs": 2, "samples_per_epoch": 16}
    train(osc_store, tmp_path / "one", *resolve_options(options))
    config = tmp_path / "ddp.toml"
    config.write_text("".join(f"{k} = {list(v) if isinstance(v, tuple) else repr(v).lower() if isinstance(v, bool) else repr(v)}\n"
                              for k, v in options.items()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "mdforecast",
           "train", osc_store, "-o", str(tmp_path / "two"), "--config", str(config), "--device", "cpu", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    assert one["decoder.gate.2.weight"].abs().max() > 1e-3  # trained: the decoder's output layer starts at zero
    assert '"world_size": 2' in (tmp_path / "two" / "model.json").read_text()
