"""Rigid molecules in torch: each molecule's template superposed onto where a step put its atoms.

The projection of positions :math:`x` onto rigid molecules replaces molecule m's atoms by its template
:math:`T_m` (its geometry in a reference frame: for a forecast, the last observed frame) rotated and translated
onto them,

.. math::
    x_m \\leftarrow \\bar x_m + R_m (T_m - \\bar T_m), \\qquad
    R_m = \\arg\\min_{R \\in SO(3)} \\sum_k w_k |R(T_{mk} - \\bar T_m) - (x_{mk} - \\bar x_m)|^2

(weighted centroids :math:`\\bar x`, weights :math:`w` the atoms' masses; the Kabsch fit of
:func:`~mdforecast.model.superpose.superpose`). It is the rigid placement closest to the atoms in the
mass-weighted least-squares sense, so the molecule's centre of mass stays where the step put it; exact in one
step (O–H and H–O–H are the template's to rounding), equivariant under rotations, translations and any
permutation of molecules, and a molecule already in the template's shape is left where it is. A molecule's atoms
are first placed by minimum image around its reference atom, so one split across box faces stays whole.

Shapes: S structures, N atoms, M molecules, K atoms per molecule.
"""

from __future__ import annotations

import torch

from ..molecules import RigidGroups
from .superpose import superpose

__all__ = ["RigidBodies"]


class RigidBodies:
    """The rigid molecules of a system, as tensors on the model's device.

    Args:
        atoms: ``(M, K)`` int64 atom indices, the reference atom first. weights: ``(M, K)`` superposition weights.

    Shapes: ``gather(x (S, N, 3), boxes (S, 3, 3) | None) -> (S, M, K, 3)``;
    ``project(x (S, N, 3), template (S, M, K, 3), boxes) -> (S, N, 3)`` Å.
    """

    def __init__(self, atoms: torch.Tensor, weights: torch.Tensor) -> None:
        self.atoms, self.weights = atoms, weights
        self._flat = atoms.reshape(-1)

    @classmethod
    def from_groups(cls, groups: RigidGroups, like: torch.Tensor) -> "RigidBodies":
        """The groups' tensors with ``like``'s device (weights in its dtype)."""
        return cls(torch.as_tensor(groups.atoms, device=like.device),
                   torch.as_tensor(groups.weights, dtype=like.dtype, device=like.device))

    def gather(self, x: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        """Each molecule's atoms, placed by minimum image around its reference atom (box vectors as rows)."""
        m = x[:, self.atoms]  # (S, M, K, 3)
        if boxes is None:
            return m
        ref, boxes = m[:, :, :1], boxes.to(x.dtype)
        delta = m - ref
        frac = torch.einsum("smki,sij->smkj", delta, torch.linalg.inv(boxes))
        return ref + delta - torch.einsum("smkj,sji->smki", torch.round(frac), boxes)

    def project(self, x: torch.Tensor, template: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        """``x`` with every molecule replaced by its ``template`` superposed onto it (module docstring)."""
        placed = superpose(template.expand(x.shape[0], -1, -1, -1), self.gather(x, boxes), self.weights)
        return x.index_copy(1, self._flat, placed.reshape(x.shape[0], -1, 3))

    def separate(self, x: torch.Tensor, closest: float, boxes: torch.Tensor | None, sweeps: int = 50,
                 margin: float = 1.0) -> torch.Tensor:
        """``x`` with molecules translated rigidly apart until no two reference atoms are closer than ``closest``
        Å: each sweep moves both molecules of every such pair by half the shortfall along their (minimum-image)
        separation, at most ``sweeps`` sweeps (the pairs within ``closest + margin`` are listed every 10 sweeps).
        A blended forecast (a mean of futures) draws neighbours together; real molecules do not overlap.
        Equivariant, and a structure without such a pair is returned as it is."""
        ref, k = self.atoms[:, 0], self.atoms.shape[1]
        inverse = None if boxes is None else torch.linalg.inv(boxes.to(x.dtype))

        def image(d: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:  # minimum image of d (P, 3) in its frame
            if boxes is None:
                return d
            b = boxes.to(x.dtype)[frame]
            return d - torch.einsum("pj,pji->pi", torch.round(torch.einsum("pi,pij->pj", d, inverse[frame])), b)

        moved = x.clone()
        for sweep in range(sweeps):
            if sweep % 10 == 0:  # list the close pairs (i < j) of every structure
                o = moved[:, ref]
                i, j = torch.triu_indices(len(ref), len(ref), 1, device=x.device)
                frame = torch.arange(x.shape[0], device=x.device).repeat_interleave(len(i))
                pi, pj = i.repeat(x.shape[0]), j.repeat(x.shape[0])
                r = image(o[frame, pj] - o[frame, pi], frame).norm(dim=-1)
                near = r < closest + margin
                frame, pi, pj = frame[near], pi[near], pj[near]
            o = moved[:, ref]
            d = image(o[frame, pj] - o[frame, pi], frame)  # (P, 3): o_j − o_i
            r = d.norm(dim=-1)
            short = (closest - r).clamp_min(0)
            if not bool((short > 0).any()):
                break
            # half the shortfall (and 1e-4 Å more, so that a crowd does not creep towards the bound) on each side
            push = (0.5 * (short + 1e-4 * (short > 0)) / r)[:, None] * d
            shift = torch.zeros(x.shape[0], len(ref), 3, dtype=x.dtype, device=x.device)
            shift.index_put_((frame, pj), push, accumulate=True)
            shift.index_put_((frame, pi), -push, accumulate=True)
            moved = moved.index_add(1, self.atoms.reshape(-1), shift[:, :, None, :].expand(-1, -1, k, -1).reshape(
                x.shape[0], -1, 3))
        return moved

    def __repr__(self) -> str:
        return f"RigidBodies(molecules={self.atoms.shape[0]}, atoms_per_molecule={self.atoms.shape[1]})"
