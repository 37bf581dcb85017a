"""The potential interface: :class:`Potential`, :class:`Prediction` and :func:`build_potential`.

A :class:`Potential` gives two things:

- :meth:`Potential.calculator` — an ASE calculator (energy eV, forces eV/Å, stress
  eV/Å³ in ASE's sign convention: Voigt ``xx yy zz yz xz xy``, positive = tensile) for
  the one-by-one ASE relaxation path;
- :meth:`Potential.predict` — energies, forces and stresses for a *list* of structures
  in as few model calls as the potential allows (CHGNet and SevenNet batch graphs),
  used by the batched FIRE relaxation.

Every potential is built from a config mapping whose ``_target_`` names a factory
returning a :class:`Potential` (``conf/potential/*.yaml``), by :func:`build_potential`
(``hydra.utils.instantiate``, once per process per config). The potential keeps that
config as :attr:`Potential.spec` and pickles *as its config*: a Dask worker receives
the config and rebuilds the potential from its own per-process cache, never the weights.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError

_CACHE: dict[str, Potential] = {}
_LOCK = threading.RLock()


@dataclass
class Prediction:
    """One structure's potential output: energy (eV), forces (N×3, eV/Å), stress
    (Voigt xx yy zz yz xz xy, eV/Å³, ASE sign: positive = tensile)."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray


@dataclass
class Potential:
    """A loaded potential.

    Attributes:
        name: family, ``chgnet`` / ``sevenn`` / ``chgnet-committee`` / anything for a wrapped calculator.
        level_of_theory: the database label, e.g. ``chgnet-0.3.0``, ``sevenn-0``.
        make_calculator: returns a fresh ASE calculator sharing the loaded model.
        predict_batch: optional batched predictor ``list[Atoms] -> list[Prediction]``;
            without one, :meth:`predict` loops over the calculator.
        spec: the config (``{"_target_": ..., **kwargs}``) that rebuilds it in another
            process; set by :func:`build_potential` (None: built in-process only, not picklable).
        device: ``cpu`` or ``cuda[:i]``.
        elements: atomic numbers the model covers (None: unknown, nothing is refused).
        coverage: elements and DFT pressure range of a fine-tuned potential's labels (warned about).
        committee: the committee of a committee potential (its spreads), else None.
    """

    name: str
    level_of_theory: str
    make_calculator: Callable[[], Any]
    predict_batch: Callable[[Sequence[Atoms]], list[Prediction]] | None = None
    spec: dict[str, Any] | None = None
    device: str = "cpu"
    elements: frozenset[int] | None = None
    #: elements and pressure range (GPa) of the DFT labels a fine-tuned potential was trained on:
    #: ``{"elements": ["Li", ...], "pressure_gpa": [lo, hi]}`` (None: not declared)
    coverage: dict | None = None
    #: the committee behind a committee potential (spreads on demand), else None
    committee: Any = field(default=None, repr=False)
    _calc: Any = field(default=None, repr=False)

    def coverage_warnings(self, atoms_list: Sequence[Atoms], pressure_gpa: float) -> list[str]:
        """One line per way ``atoms_list`` at ``pressure_gpa`` (GPa) leaves :attr:`coverage`
        (:func:`gencrystal.potentials.coverage.coverage_gaps`): an element outside its labels or an
        element combination none of its labels has, named, and a pressure outside their range."""
        from gencrystal.potentials.coverage import coverage_gaps

        out: list[str] = []
        for symbols in sorted({tuple(sorted(set(a.get_chemical_symbols()))) for a in atoms_list}):
            for kind, gap in coverage_gaps(symbols, pressure_gpa, self.coverage):
                line = f"{self.level_of_theory}: {gap}"
                if kind != "pressure":
                    line += "; its predictions for it are untested against DFT"
                if line not in out:
                    out.append(line)
        return out

    def unsupported(self, atoms: Atoms) -> str | None:
        """A one-line reason when ``atoms`` holds an element the model does not cover, else None."""
        if self.elements is None:
            return None
        from ase.data import chemical_symbols

        bad = sorted({int(z) for z in atoms.numbers} - self.elements)
        if not bad:
            return None
        names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in bad)
        return f"element {names} not covered by {self.level_of_theory}"

    def calculator(self):
        """An ASE calculator for this potential (one per call; the model is shared)."""
        return self.make_calculator()

    def predict(self, atoms_list: Sequence[Atoms], batch_size: int = 32) -> list[Prediction]:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³, Voigt) for many structures.

        Uses the potential's batched model call when it has one (``batch_size``
        structures per call), else one calculator call per structure.
        """
        out: list[Prediction] = []
        if self.predict_batch is not None:
            for start in range(0, len(atoms_list), batch_size):
                out.extend(self.predict_batch(list(atoms_list[start : start + batch_size])))
            return out
        if self._calc is None:
            self._calc = self.make_calculator()
        for atoms in atoms_list:
            a = atoms.copy()
            a.calc = self._calc
            self._calc.reset()
            out.append(Prediction(float(a.get_potential_energy()), np.array(a.get_forces()), np.array(a.get_stress(voigt=True))))
        return out

    def __reduce__(self):
        if self.spec is None:
            raise TypeError(f"potential {self.level_of_theory!r} was built in-process and cannot be sent to a worker")
        return (build_potential, (self.spec,))


def _plain(config: Any) -> dict[str, Any]:
    """A plain, JSON-able dict of a potential config (DictConfig or mapping)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise GencrystalError(f"potential config {config!r} needs a _target_ (see conf/potential/*.yaml)")
    return {str(k): (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in config.items()}


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _cached(config: dict[str, Any], make: Callable[[], Any]) -> Potential:
    key = _key(config)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        pot = make()
        if not isinstance(pot, Potential):
            raise GencrystalError(
                f"potential _target_ {config['_target_']!r} returned a {type(pot).__name__}, "
                "not a gencrystal.potentials.Potential"
            )
        if pot.spec is None:
            pot.spec = config
        _CACHE[key] = pot
        return pot


def build_potential(config: Any) -> Potential:
    """Build (once per process) the potential a config describes.

    Args:
        config: a ``conf/potential/*.yaml`` node or mapping: ``_target_`` is a factory
            returning a :class:`Potential`, the other keys its keyword arguments.

    Raises:
        GencrystalError: no ``_target_``, a target that cannot be imported or called with
            these arguments, or the factory's own GencrystalError (unknown name, missing
            checkpoint), passed through as itself.
    """
    from gencrystal.config import instantiate

    plain = _plain(config)
    return _cached(plain, lambda: instantiate(plain, "potential"))


def potential_factory(fn: Callable[..., Potential]) -> Callable[..., Potential]:
    """Decorate a factory so that a direct Python call behaves like :func:`build_potential`
    of the config naming it: cached per process by its arguments, and picklable by them.

    (A factory used only through ``conf/potential/*.yaml`` does not need it.)
    """
    sig = inspect.signature(fn)
    target = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in bound.arguments.items()}
        return _cached({"_target_": target, **arguments}, lambda: fn(**arguments))

    return wrapper


def resolve_device(device: str | None) -> str:
    """``auto``/None -> ``cuda`` when a GPU is present, else ``cpu``; a CUDA request without a GPU is an error."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise GencrystalError(f"device={device!r} requested but no CUDA GPU is available")
    return str(device)


@contextlib.contextmanager
def quiet():
    """Silence the banners potentials print while loading."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def calculator_potential(
    make_calculator: Callable[[], Any], level_of_theory: str, name: str = "calculator", elements: frozenset[int] | None = None
) -> Potential:
    """Wrap any ASE calculator factory as a :class:`Potential` (no batching).

    Called directly it is in-process only; returned from a factory named by a
    ``conf/potential/*.yaml`` (see ``docs/potentials.md``), :func:`build_potential`
    gives it that config, so Dask workers rebuild it.
    """
    return Potential(name, level_of_theory, make_calculator, None, spec=None, elements=elements)
