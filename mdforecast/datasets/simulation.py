"""One trajectory with OpenMM: platform, minimisation, equilibration, frames, and the state twins start from.

:func:`run` builds a system's random initial state from the job's seed, minimises it, equilibrates it in
two stages (Langevin at 5/ps, at constant pressure for water, then the production thermostat at constant
volume), sets time and step to zero and records ``frames`` frames, one every ``steps_per_frame`` steps,
into a sink. A twin job instead continues from a
saved exact state (OpenMM's double-precision ``State``, thermostat variables included) with fresh thermostat
noise (Langevin) or a 10⁻⁶ Å Gaussian perturbation of the positions (deterministic Nosé–Hoover).

Frames leave OpenMM in nm and nm/ps and are stored in Å and Å/ps (× 10), as float32. Positions are read
without ``enforcePeriodicBox``, so they are continuous (unwrapped); the box of every frame is stored.

On the CPU platform every context runs one thread with deterministic PME (``Threads=1``,
``DeterministicForces=true``): multi-threaded force sums on that platform are not reproducible, and on
few-core machines one pinned single-thread process per core is also the fastest arrangement, so
parallelism comes from running trajectories in separate processes.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import zlib
from collections.abc import Callable

import numpy as np

from ..errors import InputError, MDForecastError
from .spec import SystemSpec
from .systems import SYSTEMS

__all__ = ["PLATFORMS", "Job", "run", "resolve_platform", "openmm_version"]

#: ``--platform`` choices; "auto" takes the first usable of the system's ``auto_platforms``
PLATFORMS = ("auto", "Reference", "CPU", "CUDA", "OpenCL")
_PROPERTIES = {"CPU": {"Threads": "1", "DeterministicForces": "true"},
               "CUDA": {"Precision": "mixed", "DeterministicForces": "true"},
               "OpenCL": {"Precision": "mixed"}, "Reference": {}}
_PERTURBATION_ANGSTROM = 1e-6
_BAROSTAT_INTERVAL = 25  # steps between Monte Carlo volume moves
_THERMALIZE_FRICTION_PER_PS = 5.0


@dataclasses.dataclass(frozen=True)
class Job:
    """One trajectory to simulate (picklable, so worker processes can take it).

    Args:
        system: registry name. name: trajectory name in the store. seed: the trajectory's seed (seed + i).
        frames: frames to record. platform: a resolved OpenMM platform name.
        equilibration_ps: total equilibration before frame 0 (default: the spec's two stages).
        capture_frame: record the exact state at this frame (test trajectories: the last observed frame).
        twin: 0 for a trajectory; k ≥ 1 for its k-th twin, which continues from ``restart`` and records
            frames ``first_frame, first_frame + 1, …``.
    """

    system: str
    name: str
    seed: int
    frames: int
    platform: str
    equilibration_ps: float | None = None
    capture_frame: int | None = None
    twin: int = 0
    restart: str | None = None
    first_frame: int = 0


def openmm_version() -> str:
    import openmm

    return openmm.__version__


def _spec(name: str) -> SystemSpec:
    return SYSTEMS[name]


def _usable(name: str) -> str | None:
    """``None`` when platform ``name`` can run a context here, else why not (one line)."""
    import openmm

    try:
        platform = openmm.Platform.getPlatformByName(name)
        system = openmm.System()
        system.addParticle(1.0)
        openmm.Context(system, openmm.VerletIntegrator(0.001), platform, _PROPERTIES[name])
    except openmm.OpenMMException as err:
        return str(err).strip().splitlines()[0] if str(err).strip() else "unavailable"
    return None


def resolve_platform(spec: SystemSpec, platform: str = "auto") -> str:
    """The OpenMM platform to run ``spec`` on: ``platform`` itself, checked, or for ``"auto"`` the first
    usable of ``spec.auto_platforms`` (falling back to CPU)."""
    if platform not in PLATFORMS:
        raise InputError(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORMS)}")
    if platform == "auto":
        for name in (*spec.auto_platforms, "CPU"):
            if _usable(name) is None:
                return name
        raise InputError("no OpenMM platform can run here, not even CPU; reinstall openmm")
    why = _usable(platform)
    if why is not None:
        raise InputError(f"OpenMM platform {platform} cannot run here ({why}); pass --platform auto or CPU")
    return platform


def encode_state(state) -> str:
    """An OpenMM ``State`` as text for a JSON attribute: its XML, zlib-compressed, base64."""
    import openmm

    return base64.b64encode(zlib.compress(openmm.XmlSerializer.serialize(state).encode(), 6)).decode("ascii")


def decode_state(text: str):
    import openmm

    return openmm.XmlSerializer.deserialize(zlib.decompress(base64.b64decode(text)).decode())


@contextlib.contextmanager
def _single_threaded_pme():
    """Create contexts with one PME thread: the CPU PME plugin reads ``OPENMM_CPU_THREADS`` (not the
    ``Threads`` property), and its results depend on its thread count."""
    old = os.environ.get("OPENMM_CPU_THREADS")
    os.environ["OPENMM_CPU_THREADS"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["OPENMM_CPU_THREADS"]
        else:
            os.environ["OPENMM_CPU_THREADS"] = old


def _integrator(spec: SystemSpec, seed: int):
    import openmm

    if spec.thermostat == "langevin":
        integrator = openmm.LangevinMiddleIntegrator(spec.temperature_k, spec.coupling_per_ps, spec.timestep_ps)
        integrator.setRandomNumberSeed(seed)
        return integrator
    return openmm.NoseHooverIntegrator(spec.temperature_k, spec.coupling_per_ps, spec.timestep_ps)


def _seeds(rng: np.random.Generator) -> tuple[int, ...]:
    """Velocity, thermostat, barostat and thermalization seeds for OpenMM: non-zero int32
    (OpenMM reads 0 as 'pick one at random')."""
    return tuple(int(s) for s in rng.integers(1, 2**31 - 1, size=4))


def run(job: Job, sink: Callable, on_frames: Callable[[int], None] | None = None) -> dict:
    """Simulate ``job`` and pass each frame to ``sink(positions, times, steps, velocities, boxes)``.

    The sink receives one frame at a time: positions and velocities ``(1, N, 3)`` float32 in Å and Å/ps,
    times ``(1,)`` ps, steps ``(1,)`` int64, boxes ``(1, 3)`` Å or ``None`` without periodic box, the
    argument order of :meth:`mdforecast.store.TrajectoryWriter.append`. ``on_frames(1)`` follows each frame.

    Returns:
        Provenance for the trajectory's attributes; with ``job.capture_frame`` also ``restart``, the
        encoded exact state at that frame.
    """
    with _single_threaded_pme():
        return _run(job, sink, on_frames)


def _context(system, integrator, job: Job):
    import openmm

    try:
        return openmm.Context(system, integrator, openmm.Platform.getPlatformByName(job.platform),
                              _PROPERTIES[job.platform])
    except openmm.OpenMMException as err:
        raise InputError(f"OpenMM platform {job.platform} cannot run {job.system} here "
                         f"({str(err).strip()}); pass --platform CPU") from err


def _thermalize(spec: SystemSpec, built, job: Job, steps: int, seeds: tuple[int, int, int]):
    """Minimise, draw velocities and run ``steps`` of Langevin dynamics (friction
    :data:`_THERMALIZE_FRICTION_PER_PS`; with a Monte Carlo barostat when the spec has a pressure).

    Langevin brings the kinetic energy to the target within about a picosecond from any start; a Nosé–Hoover
    chain coupled at 1/ps takes far longer to refill the energy a minimisation removes. Returns the State.
    """
    import openmm

    velocity_seed, thermostat_seed, barostat_seed = seeds
    system = built.system
    integrator = openmm.LangevinMiddleIntegrator(spec.temperature_k, _THERMALIZE_FRICTION_PER_PS, spec.timestep_ps)
    integrator.setRandomNumberSeed(thermostat_seed)
    barostat = None
    if spec.pressure_bar is not None:
        barostat = system.addForce(openmm.MonteCarloBarostat(spec.pressure_bar, spec.temperature_k,
                                                             _BAROSTAT_INTERVAL))
        system.getForce(barostat).setRandomNumberSeed(barostat_seed)
    context = _context(system, integrator, job)
    context.setPositions(built.positions)
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(spec.temperature_k, velocity_seed)
    integrator.step(steps)
    state = context.getState(getPositions=True, getVelocities=True)
    if barostat is not None:
        system.removeForce(barostat)  # production runs at the volume reached here
    return state


def _run(job: Job, sink: Callable, on_frames: Callable[[int], None] | None) -> dict:
    import openmm

    spec = _spec(job.system)
    rng = np.random.default_rng([job.seed, job.twin] if job.twin else job.seed)
    built = spec.build(rng)
    velocity_seed, thermostat_seed, barostat_seed, thermalize_seed = _seeds(rng)
    attrs = {"seed": job.seed, "platform": job.platform, "openmm_version": openmm.__version__}
    if job.restart is None:
        first, second = spec.equilibration_steps(job.equilibration_ps)
        state = _thermalize(spec, built, job, first, (velocity_seed, thermalize_seed, barostat_seed))
        attrs["equilibration_ps"] = {"langevin": first * spec.timestep_ps,
                                     "production_thermostat": second * spec.timestep_ps}
    else:
        state = decode_state(job.restart)
    system, integrator = built.system, _integrator(spec, thermostat_seed)
    context = _context(system, integrator, job)
    context.setState(state)
    if job.restart is None:
        integrator.step(second)
        context.setTime(0.0)
        context.setStepCount(0)
    elif spec.stochastic:
        attrs["perturbation"] = f"fresh Langevin noise (seed {thermostat_seed})"
    else:
        positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        context.setPositions(positions + rng.normal(0.0, _PERTURBATION_ANGSTROM / 10, positions.shape))
        attrs["perturbation"] = f"Gaussian {_PERTURBATION_ANGSTROM:g} Å on every coordinate"
    periodic = system.usesPeriodicBoundaryConditions()
    for k in range(job.frames):
        if k or job.twin:
            integrator.step(spec.steps_per_frame)
        state = context.getState(getPositions=True, getVelocities=True)
        positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)[built.keep] * 10
        if not np.isfinite(positions).all():
            raise MDForecastError(f"{job.name} of {spec.name} blew up (non-finite positions) at frame "
                                  f"{job.first_frame + k}; rerun with another --seed or --platform")
        velocities = state.getVelocities(asNumpy=True).value_in_unit(openmm.unit.nanometer / openmm.unit.picosecond)
        box = None
        if periodic:
            box = np.diag(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(openmm.unit.nanometer))[None] * 10
        sink(positions[None].astype(np.float32), np.array([state.getTime().value_in_unit(openmm.unit.picosecond)]),
             np.array([state.getStepCount()], dtype=np.int64), (velocities[built.keep] * 10)[None].astype(np.float32),
             box)
        if k == job.capture_frame:
            attrs["restart"] = {"frame": job.first_frame + k, "encoding": "OpenMM State XML, zlib, base64 (nm, ps)",
                                "state": encode_state(context.getState(getPositions=True, getVelocities=True,
                                                                       integratorParameters=True))}
        if on_frames is not None:
            on_frames(1)
    return attrs
