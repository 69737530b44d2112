"""The truth sample shipped with a pretrained model: what ``predict --model NAME`` and ``evaluate`` read."""

from __future__ import annotations

import numpy as np

from .. import protocol
from ..scores import paper_scale
from ..store import Store, writing

__all__ = ["TRUTH_STRIDE", "embed_truth"]

#: stride (frames) of the sample of the whole forecast domain kept in an embedded truth
TRUTH_STRIDE = 20


def embed_truth(store, trajectory: str, output, *, observe: int, stride: int = TRUTH_STRIDE) -> list[int]:
    """Write a sample of test ``trajectory`` of ``store`` (and its twins) to a new store ``output``.

    The sample holds every observed frame [0, ``observe``) (what a model and the baselines read), every
    frame of the default scoring windows (:data:`~mdforecast.protocol.WINDOWS` after ``observe``)
    and every ``stride``-th frame of the rest of the trajectory; each stored frame records the frame index it
    stands for, so ``evaluate`` scores exactly those frames. Twins keep the same frames (from their first
    frame on). The store's ``paper_scale`` attribute is the paper-scale normalisation taken from the
    *training* trajectories, which the sample does not hold. Returns the sampled frame indices.
    """
    source = store if isinstance(store, Store) else Store.open(store)
    traj = source.trajectory(trajectory)
    keep = np.zeros(traj.n_frames, bool)
    keep[:observe] = True
    keep[observe::stride] = True
    for a, b in protocol.WINDOWS:
        keep[observe + a:observe + b] = True
    frames = np.flatnonzero(keep)
    twins = [t for t in source if t.attrs.get("twin_of") == trajectory]
    train = [source.trajectory(n) for n in (source.split or {}).get("train", [])]
    centred = not traj.has_box
    scale = paper_scale(train or [traj], (0, observe), centred, "training trajectories" if train
                        else f"trajectory {trajectory}")
    attrs = {**{k: v for k, v in source.attrs.items() if k == "dataset"},
             "paper_scale": scale, "sample": {"of": str(source.path), "trajectory": trajectory, "observe": observe,
                                              "stride": stride, "windows": [list(w) for w in protocol.WINDOWS]}}
    with writing(output, topology=source.topology, attrs=attrs) as out:
        for t, first in [(traj, 0)] + [(twin, int(twin.attrs.get("first_frame", 0))) for twin in twins]:
            local = frames[frames >= first] - first
            local = local[local < t.n_frames]
            with out.add_trajectory(t.name, velocities=False, box=None if not t.has_box else t.boxes(0, 1).shape[1:],
                                    attrs=t.attrs, frame_index=True) as writer:
                writer.append(t.positions()[local], t.times()[local], t.steps()[local],
                              boxes=None if not t.has_box else t.boxes()[local], frames=local.astype(np.float64))
        out.set_split([], [trajectory])
    return frames.tolist()
