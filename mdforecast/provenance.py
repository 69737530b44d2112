"""Checksums recorded as provenance: of source trajectories, topologies and checkpoints."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["sha256", "sha256_files", "positions_sha256"]


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of one file, read in blocks (constant memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_files(files: Sequence[Path], root: Path) -> str:
    """One hex SHA-256 over several files: each file's path relative to ``root``, then its bytes."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def positions_sha256(positions: np.ndarray) -> str:
    """Hex SHA-256 of positions ``(T, N, 3)`` as float32 Å: a forecast records its observed frames' so that
    ``evaluate`` refuses a truth from another simulation."""
    return hashlib.sha256(np.ascontiguousarray(positions, dtype=np.float32).tobytes()).hexdigest()
