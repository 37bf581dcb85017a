"""``relax_structures``: the one call that relaxes many structures under pressure.

Three ways to run, same results:

- in-process, one by one (ASE ``FrechetCellFilter`` + FIRE/BFGS): ``workers=0`` or ``1``;
- in-process, batched (:func:`gencrystal.relax.batched.relax_batched`): ``batched=True``;
- fanned out over Dask workers (``workers=N`` single-threaded processes on a
  ``LocalCluster``, or ``scheduler="tcp://host:8786"`` for an existing cluster, e.g. one
  started with dask-jobqueue on SLURM) by :func:`gencrystal.fanout.run_tasks`. Each
  worker loads the potential once from its config (``Potential.spec``, never the
  weights) and relaxes chunks of structures (one by one, or batched when ``batched=True``).

One structure's failure is recorded on its :class:`RelaxResult` and never stops the rest.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.fanout import FanOut, progress_bar, run_tasks, single_threaded
from gencrystal.potentials import Potential, as_potential, build_potential
from gencrystal.relax.ase_relax import OPTIMIZERS, RelaxGuard, relax_one
from gencrystal.relax.result import RelaxResult
from gencrystal.units import check_pressure


def _normalise_inputs(structures: Iterable, ids: Sequence[str] | None) -> tuple[list[Atoms], list[str]]:
    from gencrystal.structures import to_atoms

    atoms_list, names = [], []
    for i, s in enumerate(structures):
        if isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], str):
            names.append(s[0])
            s = s[1]
        else:
            names.append(str(s.info.get("id", i)) if isinstance(s, Atoms) else str(i))
        atoms_list.append(to_atoms(s))
    if ids is not None:
        if len(ids) != len(atoms_list):
            raise GencrystalError(f"{len(ids)} ids given for {len(atoms_list)} structures")
        names = [str(x) for x in ids]
    return atoms_list, names


def _relax_chunk(
    atoms_list: list[Atoms], ids: list[str], potential: Potential, pressure_gpa: float, opts: dict, progress=None, on_result=None
) -> list[RelaxResult]:
    """Relax a list of structures in this process (batched or one by one)."""
    from gencrystal.relax.batched import relax_batched

    unsupported = {i: potential.unsupported(a) for i, a in enumerate(atoms_list)}
    skip = {i: why for i, why in unsupported.items() if why}
    if skip:  # elements the model does not know: recorded failures, the rest goes on
        keep = [i for i in range(len(atoms_list)) if i not in skip]
        sub = _relax_chunk(
            [atoms_list[i] for i in keep],
            [ids[i] for i in keep],
            potential,
            pressure_gpa,
            opts,
            progress=progress,
            on_result=None if on_result is None else (lambda j, r: on_result(keep[j], r)),
        )
        out: list[RelaxResult] = [None] * len(atoms_list)  # type: ignore[list-item]
        for i, r in zip(keep, sub):
            out[i] = r
        for i, why in skip.items():
            out[i] = _failed(atoms_list[i], ids[i], pressure_gpa, why, potential.level_of_theory)
            if on_result is not None:
                on_result(i, out[i])
            if progress is not None:
                progress(1)
        return out
    with single_threaded(opts.get("torch_threads", 1)):
        if opts["batched"]:
            out = relax_batched(
                atoms_list,
                potential,
                pressure_gpa,
                fmax=opts["fmax"],
                steps=opts["steps"],
                guard=opts["guard"],
                batch_size=opts["batch_size"],
                ids=ids,
                exp_cell_factor=opts.get("exp_cell_factor"),
                symprec=opts["symprec"],
                progress=progress,
            )
            if on_result is not None:
                for i, r in enumerate(out):
                    on_result(i, r)
            return out
        out = []
        calc = potential.calculator()
        for a, sid in zip(atoms_list, ids):
            out.append(
                relax_one(
                    a,
                    calc,
                    pressure_gpa,
                    potential.level_of_theory,
                    optimizer=opts["optimizer"],
                    fmax=opts["fmax"],
                    steps=opts["steps"],
                    guard=opts["guard"],
                    sid=sid,
                    exp_cell_factor=opts.get("exp_cell_factor"),
                    symprec=opts["symprec"],
                )
            )
            if on_result is not None:
                on_result(len(out) - 1, out[-1])
            if progress is not None:
                progress(1)
        return out


def _worker_task(atoms_list, ids, spec, pressure_gpa, opts):
    """Dask task: build the potential from its config (cached per worker process) and relax."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    potential = build_potential(spec)
    return _relax_chunk(atoms_list, ids, potential, pressure_gpa, opts)


def relax_structures(
    structures: Iterable,
    pressure_gpa: float = 0.0,
    potential: Any = "chgnet",
    *,
    optimizer: str = "FIRE",
    fmax: float = 0.05,
    steps: int = 300,
    guard: RelaxGuard | None = None,
    batched: bool = False,
    batch_size: int = 32,
    workers: int = 1,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    ids: Sequence[str] | None = None,
    device: str | None = "auto",
    torch_threads: int = 1,
    exp_cell_factor: float | None = None,
    symprec: float = 0.1,
    progress: bool = True,
    on_result: Callable[[int, RelaxResult], None] | None = None,
) -> list[RelaxResult]:
    """Relax structures at ``pressure_gpa`` (GPa), minimising H = E + P·V; one result per input, same order.

    Args:
        structures: ASE ``Atoms``, pymatgen ``Structure`` or ``(id, Atoms)`` pairs.
        pressure_gpa: target pressure, GPa (>= 0).
        potential: a loaded :class:`Potential`, a ``conf/potential`` config (``_target_``),
            ``"chgnet"``, ``"sevenn"``, a checkpoint path or a ``{name, path, device}`` mapping
            (:func:`gencrystal.potentials.as_potential`).
        optimizer: ``FIRE`` or ``BFGS`` (batched relaxation is FIRE only).
        fmax: generalised-force threshold, eV/Å (FrechetCellFilter's; cell part = virial/N).
        steps: maximum optimiser steps per structure.
        guard: :class:`RelaxGuard` volume limits (default limits when None).
        batched: evaluate many structures per model call with the batched FIRE.
        batch_size: structures per model call when batched.
        workers: 0/1 run in this process; N > 1 fans out over a Dask LocalCluster of N
            single-threaded worker processes.
        scheduler: address of an existing Dask scheduler (overrides ``workers``).
        chunk_size: structures per Dask task (default: 1, or for ``batched`` up to
            ``batch_size`` spread evenly over the workers).
        ids: names for the structures (default: given ids, ``atoms.info['id']`` or index).
        device: ``auto``/``cpu``/``cuda`` for a potential given by name.
        torch_threads: torch/BLAS threads per process (1 recommended on shared CPUs).
        progress: show a tqdm progress bar.
        on_result: called as ``on_result(index, result)`` as soon as a structure is done
            (per structure one by one, per chunk with Dask/batched) — used to checkpoint.

    Raises:
        GencrystalError: bad pressure, unknown potential or optimiser (nothing is relaxed).
    """
    pressure_gpa = check_pressure(pressure_gpa)
    if optimizer.upper() not in OPTIMIZERS:
        raise GencrystalError(f"optimizer={optimizer!r} is unknown; choose {' or '.join(OPTIMIZERS)}")
    if batched and optimizer.upper() != "FIRE":
        raise GencrystalError(f"batched relaxation uses FIRE; optimizer={optimizer!r} needs batched=false")
    from gencrystal.limits import MAX_STEPS, check_count, check_quantity

    fmax = check_quantity(fmax, "fmax", "eV/Å", 0.0, 100.0)
    steps = check_count(steps, "steps", 0, MAX_STEPS)
    atoms_list, names = _normalise_inputs(structures, ids)
    if not atoms_list:
        return []
    opts = {
        "optimizer": optimizer.upper(),
        "fmax": float(fmax),
        "steps": int(steps),
        "guard": guard or RelaxGuard(),
        "batched": bool(batched),
        "batch_size": int(batch_size),
        "torch_threads": int(torch_threads),
        "exp_cell_factor": exp_cell_factor,
        "symprec": float(symprec),
    }
    use_dask = scheduler is not None or int(workers) > 1
    pot = as_potential(potential, device)  # validates the config before any worker starts
    for msg in pot.coverage_warnings(atoms_list, pressure_gpa):  # elements/pressures outside its labels
        print(f"warning: {msg}", file=sys.stderr, flush=True)
    if not use_dask:
        with progress_bar(len(atoms_list), progress, f"relax [{pot.level_of_theory}]") as bar:
            return _relax_chunk(atoms_list, names, pot, pressure_gpa, opts, progress=bar, on_result=on_result)
    if pot.spec is None:
        raise GencrystalError(
            f"potential {pot.level_of_theory!r} was built in-process; Dask workers need "
            "its config (conf/potential/*.yaml, gencrystal.potentials.build_potential)"
        )
    return _relax_dask(
        atoms_list,
        names,
        pot.spec,
        pressure_gpa,
        opts,
        workers=int(workers),
        scheduler=scheduler,
        chunk_size=chunk_size,
        progress=progress,
        on_result=on_result,
        label=pot.level_of_theory,
    )


def _relax_dask(atoms_list, names, spec, pressure_gpa, opts, *, workers, scheduler, chunk_size, progress, on_result, label):
    """Relax over Dask with :func:`gencrystal.fanout.run_tasks`, one chunk of structures per task."""
    n = len(atoms_list)
    # one structure per task unless batched: relaxation times differ by 100x (a 16-atom cell
    # compressed at 50 GPa vs a converged cubic one), and Dask balances single tasks; batched
    # FIRE needs several structures per task to fill a model call
    nworkers = max(1, int(workers)) if scheduler is None else 1
    size = chunk_size or (max(1, min(opts["batch_size"], -(-n // nworkers))) if opts["batched"] else 1)
    chunks = [(i, min(i + size, n)) for i in range(0, n, size)]

    def failed(k: int, exc: BaseException) -> list[RelaxResult]:  # worker died: this chunk's structures only
        lo, hi = chunks[k]
        return [
            _failed(atoms_list[j], names[j], pressure_gpa, f"worker failed: {type(exc).__name__}: {exc}") for j in range(lo, hi)
        ]

    def arrived(k: int, chunk: list[RelaxResult]) -> None:
        if on_result is not None:
            for j, r in enumerate(chunk):
                on_result(chunks[k][0] + j, r)

    done = run_tasks(
        _worker_task,
        [(atoms_list[lo:hi], names[lo:hi], spec, pressure_gpa, opts) for lo, hi in chunks],
        FanOut(workers=int(workers), scheduler=scheduler, torch_threads=int(opts.get("torch_threads", 1))),
        label=f"relax [{label}]",
        progress=progress,
        on_result=arrived,
        on_error=failed,
    )
    return [r for chunk in done for r in chunk]


def _failed(atoms: Atoms, sid: str, pressure_gpa: float, error: str, level: str = "") -> RelaxResult:
    res = RelaxResult(
        atoms=Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True),
        pressure_gpa=pressure_gpa,
        error=error,
        id=sid,
        level_of_theory=level,
        volume_per_atom=atoms.get_volume() / len(atoms),
    )
    res.atoms.info.update(res.info())
    return res
