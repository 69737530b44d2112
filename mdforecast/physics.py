"""Physical fidelity of forecast frames against the truth (PROTOCOL.md score 4), in numpy.

The system kind is read from the topology (:func:`system_kind`):

- ``water``: most residues are waters (:func:`mdforecast.molecules.find_waters`). Scores: O–H length and
  H–O–H angle of the forecast against the truth frame by frame (rigid models: any deviation is model error)
  and the O–O radial distribution g_OO(r);
- ``peptide``: a residue has backbone φ (C₋₁–N–Cα–C) and ψ (N–Cα–C–N₊₁). Scores: bond-length deviation over
  the topology's bonds and the Jensen–Shannon divergence of the φ/ψ histograms;
- ``liquid``: anything else with a periodic box. Scores: g(r) over all atoms and the mean squared
  displacement from the last observed frame.

Pair distances use the minimum image of each frame's box (``MDAnalysis.lib.distances``, C code). A forecast
frame's box is the last observed box (what ``mdforecast predict`` stores).

Shapes: K frames, N atoms, B bonds; positions float, Å; boxes ``(K, 3)`` edges or ``(K, 3, 3)`` vectors, Å.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .molecules import bonds as topology_bonds
from .molecules import find_waters
from .pbc import box_matrix, dimensions_from_box
from .topology import Topology

__all__ = ["KINDS", "system_kind", "rdf", "bond_lengths", "angles", "dihedrals", "jensen_shannon",
           "water_geometry", "backbone_dihedrals", "physics_scores", "GEOMETRY_TOLERANCE", "geometry_problems",
           "closest_nonbonded", "overlap_limit"]

#: the system kinds :func:`physics_scores` knows
KINDS = ("water", "peptide", "liquid")
_RDF_BIN = 0.1  # Å
_RAMA_BINS = 24  # 15° bins on each axis
#: what :func:`geometry_problems` tolerates: a frame's RMS deviation of bond lengths from the truth's (Å), of the
#: water O–H length (Å) and H–O–H angle (°); ``close``: the fraction of the truth's closest non-bonded distance
#: below which two atoms overlap
GEOMETRY_TOLERANCE = {"bond": 0.1, "oh": 0.02, "hoh": 2.0, "close": 0.6}
_CLOSEST_SEARCH = 4.0  # Å: how far :func:`overlap_limit` looks for the truth's closest non-bonded pair


def _residues(topology: Topology) -> list[np.ndarray]:
    starts = np.flatnonzero(np.r_[True, (topology.resids[1:] != topology.resids[:-1])
                                  | (topology.resnames[1:] != topology.resnames[:-1])])
    return np.split(np.arange(topology.n_atoms), starts[1:])


def water_geometry(topology: Topology) -> tuple[np.ndarray, np.ndarray]:
    """O–H bonds ``(2·W, 2)`` (O, H) and H–O–H angles ``(W, 3)`` (H, O, H) of the ``W`` waters of ``topology``
    (:func:`mdforecast.molecules.find_waters`); both empty without waters."""
    groups = find_waters(topology)
    if groups is None:
        return np.zeros((0, 2), np.int64), np.zeros((0, 3), np.int64)
    o, h1, h2 = groups.atoms[:, 0], groups.atoms[:, 1], groups.atoms[:, 2]
    bonds = np.stack([o, h1, o, h2], axis=1).reshape(-1, 2)
    return bonds, np.stack([h1, o, h2], axis=1)


def backbone_dihedrals(topology: Topology) -> np.ndarray:
    """Atom quadruples ``(2·R, 4)`` of φ and ψ (interleaved: φ₀, ψ₀, φ₁, …) of residues that have both."""
    residues = _residues(topology)
    names = np.array([str(n).strip() for n in topology.names])

    def atom(res: np.ndarray, name: str) -> int | None:
        hits = res[names[res] == name]
        return int(hits[0]) if len(hits) else None

    quads = []
    for prev, res, nxt in zip(residues, residues[1:], residues[2:]):
        c_prev, n, ca, c, n_next = atom(prev, "C"), atom(res, "N"), atom(res, "CA"), atom(res, "C"), atom(nxt, "N")
        if None not in (c_prev, n, ca, c, n_next):
            quads += [(c_prev, n, ca, c), (n, ca, c, n_next)]
    return np.array(quads, dtype=np.int64).reshape(-1, 4)


def system_kind(topology: Topology, *, has_box: bool) -> str:
    """``'water'``, ``'peptide'`` or ``'liquid'`` (see the module docstring); InputError for none of them."""
    waters = len(water_geometry(topology)[1])
    if waters and waters >= 0.5 * len(_residues(topology)):
        return "water"
    if len(backbone_dihedrals(topology)):
        return "peptide"
    if has_box:
        return "liquid"
    raise InputError("--physics knows water, peptides (backbone φ/ψ) and atomic liquids in a periodic box; "
                     "this system is none of them, drop --physics")


def bond_lengths(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """Lengths ``(K, B)`` Å of ``bonds`` ``(B, 2)`` (positions unwrapped, molecules whole)."""
    x = np.asarray(positions, dtype=np.float64)
    return np.linalg.norm(x[:, bonds[:, 1]] - x[:, bonds[:, 0]], axis=-1)


def angles(positions: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """Angles ``(K, A)`` in degrees at the middle atom of ``triples`` ``(A, 3)``."""
    x = np.asarray(positions, dtype=np.float64)
    u, v = x[:, triples[:, 0]] - x[:, triples[:, 1]], x[:, triples[:, 2]] - x[:, triples[:, 1]]
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def dihedrals(positions: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Dihedral angles ``(K, D)`` in degrees, (−180, 180], of ``quads`` ``(D, 4)`` (IUPAC sign convention)."""
    x = np.asarray(positions, dtype=np.float64)
    b0 = x[:, quads[:, 0]] - x[:, quads[:, 1]]
    b1 = x[:, quads[:, 2]] - x[:, quads[:, 1]]
    b2 = x[:, quads[:, 3]] - x[:, quads[:, 2]]
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, -1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, -1, keepdims=True) * b1
    return np.degrees(np.arctan2(np.sum(np.cross(b1, v) * w, -1), np.sum(v * w, -1)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits, [0, 1], of two histograms (normalised here)."""
    p, q = np.asarray(p, np.float64).ravel(), np.asarray(q, np.float64).ravel()
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def _half_width(boxes: np.ndarray) -> float:
    """Half the smallest perpendicular width over all boxes, Å: the largest r the minimum image resolves."""
    h = box_matrix(boxes).reshape(-1, 3, 3)
    volume = np.abs(np.linalg.det(h))
    widths = [volume / np.linalg.norm(np.cross(h[:, (i + 1) % 3], h[:, (i + 2) % 3]), axis=-1) for i in range(3)]
    return float(np.min(widths)) / 2.0


def rdf(positions: np.ndarray, boxes: np.ndarray, *, r_max: float, bin_width: float = _RDF_BIN,
        atoms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function of ``atoms`` (default all), averaged over frames: ``(r, g)`` ``(bins,)``.

    .. math:: g(r) = \\frac{\\sum_k n_k(r)}{\\sum_k \\tfrac{1}{2}M(M-1)\\,4\\pi r^2\\Delta r / V_k}

    with :math:`n_k(r)` the pairs in the shell at frame k (minimum image), M atoms, :math:`V_k` the box volume.
    Shells use the exact volume :math:`\\tfrac{4}{3}\\pi(r_{i+1}^3 - r_i^3)`; ``r`` are the shell centres.
    """
    from MDAnalysis.lib.distances import self_distance_array

    x = np.asarray(positions, dtype=np.float32)
    x = x if atoms is None else x[:, atoms]
    m = x.shape[1]
    edges = np.arange(0.0, r_max + 1e-9, bin_width)
    counts = np.zeros(len(edges) - 1)
    ideal = 0.0
    dims = dimensions_from_box(boxes)
    volumes = np.abs(np.linalg.det(box_matrix(boxes)))
    for k in range(len(x)):
        d = self_distance_array(x[k], box=dims[k])
        counts += np.histogram(d, bins=edges)[0]
        ideal += 0.5 * m * (m - 1) / volumes[k]
    shells = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (ideal * shells)


def _rdf_pair(forecast, truth, forecast_boxes, truth_boxes, atoms=None) -> tuple[dict, dict]:
    r_max = min(_half_width(forecast_boxes), _half_width(truth_boxes))
    r, g_f = rdf(forecast, forecast_boxes, r_max=r_max, atoms=atoms)
    _, g_t = rdf(truth, truth_boxes, r_max=r_max, atoms=atoms)
    numbers = {"rms_difference": float(np.sqrt(np.mean((g_f - g_t) ** 2))),
               "first_peak_forecast": float(g_f.max()), "first_peak_truth": float(g_t.max())}
    return numbers, {"r": r, "forecast": g_f, "truth": g_t}


def _deviation(forecast: np.ndarray, truth: np.ndarray) -> dict:
    return {"forecast_mean": float(forecast.mean()), "truth_mean": float(truth.mean()),
            "rms_deviation": float(np.sqrt(np.mean((forecast - truth) ** 2)))}


def physics_scores(kind: str, topology: Topology, forecast: np.ndarray, truth: np.ndarray,
                   forecast_boxes: np.ndarray | None, truth_boxes: np.ndarray | None,
                   reference: np.ndarray) -> tuple[dict, dict]:
    """Physics metrics of forecast frames against the true frames at the same times.

    Args:
        kind: one of :data:`KINDS`. forecast, truth: ``(K, N, 3)`` Å. forecast_boxes, truth_boxes: per-frame
            boxes, or ``None`` without a box. reference: ``(K, N, 3)`` Å, each frame's last observed frame.

    Returns:
        ``(numbers, curves)``: JSON-ready numbers (Å, degrees, Å², bits) and arrays for plots.
    """
    if kind == "liquid":
        g, curve = _rdf_pair(forecast, truth, forecast_boxes, truth_boxes)
        msd = {name: float(np.mean(np.sum((np.asarray(x, np.float64) - reference) ** 2, axis=-1)))
               for name, x in (("forecast", forecast), ("truth", truth))}
        return {"g_r": g, "msd_from_last_observed": msd}, {"g_r": curve}
    if kind == "water":
        bonds, triples = water_geometry(topology)
        oxygens = np.unique(triples[:, 1])
        g, curve = _rdf_pair(forecast, truth, forecast_boxes, truth_boxes, atoms=oxygens)
        return ({"oh_length": _deviation(bond_lengths(forecast, bonds), bond_lengths(truth, bonds)),
                 "hoh_angle": _deviation(angles(forecast, triples), angles(truth, triples)), "g_oo": g},
                {"g_oo": curve})
    if kind == "peptide":
        if topology.bonds is None or not len(topology.bonds):
            raise InputError("the peptide's topology has no bonds, so bond lengths cannot be scored; "
                             "ingest it with a topology that has bonds (PSF, PRMTOP, PDB with CONECT)")
        quads = backbone_dihedrals(topology)
        phi_psi = {name: dihedrals(x, quads).reshape(len(x), -1, 2).reshape(-1, 2)
                   for name, x in (("forecast", forecast), ("truth", truth))}
        edges = np.linspace(-180.0, 180.0, _RAMA_BINS + 1)
        hist = {name: np.histogram2d(a[:, 0], a[:, 1], bins=[edges, edges])[0] for name, a in phi_psi.items()}
        return ({"bond_length": _deviation(bond_lengths(forecast, topology.bonds), bond_lengths(truth, topology.bonds)),
                 "phi_psi_jsd_bits": jensen_shannon(hist["forecast"], hist["truth"])},
                {"phi_psi": phi_psi})
    raise ValueError(f"unknown system kind {kind!r}; one of {KINDS}")


def _frame_rms(forecast: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((forecast - truth) ** 2, axis=1))


def closest_nonbonded(positions: np.ndarray, boxes: np.ndarray | None, bonds: np.ndarray,
                      cutoff: float) -> np.ndarray:
    """The closest distance ``(K,)`` Å, per frame, between two atoms that are not bonded to each other.

    Args:
        positions: ``(K, N, 3)`` Å. boxes: ``(K, 3)`` edges or ``(K, 3, 3)`` vectors, Å (minimum image), or
            ``None`` without a box. bonds: ``(B, 2)`` atom indices of the pairs left out.
        cutoff: Å; pairs are searched up to it, and a frame without a closer pair reports ``cutoff``.
    """
    from MDAnalysis.lib.distances import self_capped_distance

    n = positions.shape[1]
    bonded = np.sort(bonds, axis=1) @ np.array([n, 1]) if len(bonds) else np.zeros(0, np.int64)
    dims = None if boxes is None else dimensions_from_box(boxes)
    out = np.full(len(positions), cutoff)
    for k, x in enumerate(np.asarray(positions, dtype=np.float32)):
        pairs, d = self_capped_distance(x, cutoff, box=None if dims is None else dims[k])
        d = d[~np.isin(np.sort(pairs, axis=1) @ np.array([n, 1]), bonded)] if len(pairs) else d
        if len(d):
            out[k] = min(cutoff, float(d.min()))
    return out


def overlap_limit(truth: np.ndarray, boxes: np.ndarray | None, bonds: np.ndarray) -> float:
    """The distance (Å) below which two atoms that are not bonded overlap: ``GEOMETRY_TOLERANCE['close']`` ×
    the closest such pair over the true frames ``truth`` ``(K, N, 3)`` Å (searched up to
    :data:`_CLOSEST_SEARCH`; ``boxes`` and ``bonds`` as in :func:`closest_nonbonded`)."""
    return GEOMETRY_TOLERANCE["close"] * float(closest_nonbonded(truth, boxes, bonds, _CLOSEST_SEARCH).min())


def geometry_problems(topology: Topology, forecast: np.ndarray, truth: np.ndarray,
                      boxes: np.ndarray | None = None) -> dict[str, str]:
    """Where forecast frames break the geometry beyond :data:`GEOMETRY_TOLERANCE`, one line per kind of problem.

    Kinds: ``bond lengths`` (a frame's RMS deviation from the true frame's over the topology's bonds outside
    water; needs bonds), ``rigid water`` (O–H lengths and H–O–H angles against the true frame's), ``overlapping
    atoms`` (two atoms that are not bonded closer than ``close`` × the closest such pair in the true frames,
    minimum image with ``boxes``). Empty when nothing is broken (the truth itself, persistence).

    Args:
        forecast, truth: ``(K, N, 3)`` Å, the same frames. boxes: ``(K, 3)`` or ``(K, 3, 3)`` Å, or ``None``.
    """
    tol, problems = GEOMETRY_TOLERANCE, {}
    water_bonds, triples = water_geometry(topology)
    if len(triples):
        oh = _frame_rms(bond_lengths(forecast, water_bonds), bond_lengths(truth, water_bonds))
        hoh = _frame_rms(angles(forecast, triples), angles(truth, triples))
        if oh.max() > tol["oh"] or hoh.max() > tol["hoh"]:
            k = int(np.argmax(oh / tol["oh"] + hoh / tol["hoh"]))
            problems["rigid water"] = (
                f"forecast waters are not rigid: up to {oh.max():.3f} Å RMS in O–H length and {hoh.max():.1f}° in "
                f"H–O–H angle from the true frames' (tolerance {tol['oh']} Å, {tol['hoh']}°; worst frame: mean "
                f"H–O–H {angles(forecast[k:k + 1], triples).mean():.1f}° vs {angles(truth[k:k + 1], triples).mean():.1f}°)")
    bonds = topology_bonds(topology)
    in_water = np.isin(bonds, np.unique(triples)).any(axis=1) if len(triples) else np.zeros(len(bonds), bool)
    molecular = bonds[~in_water]
    if len(molecular):
        rms = _frame_rms(bond_lengths(forecast, molecular), bond_lengths(truth, molecular))
        if rms.max() > tol["bond"]:
            k = int(np.argmax(rms))
            problems["bond lengths"] = (
                f"forecast bond lengths are off by up to {rms.max():.3f} Å RMS from the true frames' (tolerance "
                f"{tol['bond']} Å; worst frame: mean bond {bond_lengths(forecast[k:k + 1], molecular).mean():.2f} Å "
                f"vs {bond_lengths(truth[k:k + 1], molecular).mean():.2f} Å)")
    limit = overlap_limit(truth, boxes, bonds)
    close = closest_nonbonded(forecast, boxes, bonds, limit)
    if close.min() < limit:
        problems["overlapping atoms"] = (
            f"forecast atoms overlap: {int((close < limit).sum())} of {len(close)} frames checked have two atoms "
            f"that are not bonded {close.min():.2f} Å apart, closer than {tol['close']} × the true frames' closest "
            f"such pair ({limit:.2f} Å)")
    return problems
