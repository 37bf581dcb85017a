"""The Python sampling API: ``Generator(ckpt).sample(composition, pressure, n)``.

The ``gencrystal sample`` command, the search loops and notebooks all sample through
:class:`Generator`, so that seeding, batching, validation and flagging behave the same
everywhere. Units: pressure in GPa, lengths in Å, volumes in Å³.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Sequence

import numpy as np
import torch
from ase import Atoms

from gencrystal.checks import StructureChecks
from gencrystal.composition import composition_to_atomic_numbers
from gencrystal.data.convert import composition_vector
from gencrystal.data.transforms import MAX_Z
from gencrystal.errors import GencrystalError
from gencrystal.sampling.requests import SampleRequest, check_num_samples, expand_request, total_samples

#: Length of the composition condition vector (fractions indexed by Z - 1).
NUM_ELEMENTS = MAX_Z


class SamplingWarning(UserWarning):
    """A request the model can answer only by extrapolation (unseen element, pressure, ...)."""


class PressureRangeWarning(SamplingWarning):
    """A requested pressure lies outside the pressures the model saw in training."""


@dataclass
class SampleRun:
    """The result of :meth:`Generator.run`.

    Attributes:
        frames: one ASE ``Atoms`` per sample, in request order, with info keys
            ``composition``, ``pressure_gpa``, ``sample_index``, ``seed``, ``ckpt``,
            ``request_index``, ``formula``, ``formula_units``, ``sampler``, ``flagged``,
            ``flags``, ``min_distance`` (Å) and ``volume_per_atom`` (Å³).
        requests: the requests that were sampled.
        seed: the seed used (drawn at random and recorded when none was given).
        nfe_per_sample: network evaluations along one trajectory (the sampler's cost).
        nfe_total: network evaluations summed over all batches.
        num_batches: number of batched model calls.
        wall_time_s: sampling wall time in seconds (model calls + conversion + checks).
        warnings: warning lines (pressure outside the trained range, ...).
        passes_per_nfe: network forward passes per evaluation (2 under classifier-free
            guidance, whose conditional and unconditional passes count as one NFE).
    """

    frames: list[Atoms]
    requests: list[SampleRequest]
    seed: int
    nfe_per_sample: int
    nfe_total: int
    num_batches: int
    wall_time_s: float
    warnings: list[str] = field(default_factory=list)
    passes_per_nfe: int = 1

    @property
    def flagged(self) -> list[Atoms]:
        """Frames with at least one flag."""
        return [a for a in self.frames if a.info.get("flagged")]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` -> a usable torch device (or a one-line error)."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise GencrystalError(f"device={name!r} is not a torch device (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GencrystalError(f"device={name!r} requested but torch sees no CUDA GPU (use device=cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise GencrystalError(f"device={name!r} is not supported (use cpu, cuda, cuda:N or auto)")
    return dev


def resolve_checkpoint(ckpt: str | os.PathLike) -> Path:
    """A checkpoint file, or a training run folder (``gencrystal train out=DIR``) whose
    ``checkpoints/best.ckpt`` (else ``checkpoints/last.ckpt``) is taken."""
    path = Path(ckpt)
    if not path.exists():
        raise GencrystalError(f"checkpoint {str(ckpt)!r} does not exist")
    if path.is_dir():
        for cand in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "best.ckpt", "last.ckpt"):
            if (path / cand).is_file():
                return path / cand
        raise GencrystalError(f"checkpoint folder {str(ckpt)!r} holds no checkpoints/best.ckpt or checkpoints/last.ckpt")
    return path


def load_module(ckpt: str | os.PathLike, device: torch.device):
    """Load a trained :class:`gencrystal.model.module.CrystalDiffusionModule` in eval mode
    from a checkpoint file or a run folder (see :func:`resolve_checkpoint`).

    A missing, unreadable or corrupt checkpoint raises a one-line :class:`GencrystalError`
    naming the path.
    """
    path = resolve_checkpoint(ckpt)
    from gencrystal.model.module import CrystalDiffusionModule

    try:
        module = CrystalDiffusionModule.load_checkpoint(str(path), map_location=str(device))
    except GencrystalError:
        raise
    except Exception as exc:  # torch / pickle / Lightning raise many types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GencrystalError(f"cannot load checkpoint {str(ckpt)!r}: {first}") from exc
    module.to(device)
    module.eval()
    return module


def outputs_to_atoms(out: dict[str, torch.Tensor]) -> list[Atoms]:
    """Split a batched model output (frac_coords [N,3], lattice [B,3,3] rows = vectors in
    Å, atom_types [N], num_atoms [B]) into one periodic ``Atoms`` per crystal."""
    from gencrystal.data.convert import batch_to_atoms

    return batch_to_atoms(SimpleNamespace(**{k: out[k] for k in ("frac_coords", "lattice", "atom_types", "num_atoms")}))


class Generator:
    """Samples crystal structures from a trained checkpoint, conditioned on composition and pressure.

    Args:
        ckpt: path to a checkpoint, or an already loaded module with the
            ``CrystalDiffusionModule`` interface (``sample``, ``max_atoms``, ``csp``,
            ``pressure_range``, ``data_stats``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        sampler: ``"fast"`` (few network evaluations) or ``"pc"`` (predictor–corrector),
            or a sampler config (DictConfig) understood by the model.
        guidance_scale: classifier-free guidance scale (1.0 = plain conditional model).
        batch_size: number of crystals per model call.
        checks: flagging thresholds (:class:`gencrystal.checks.StructureChecks`; its
            documented defaults when None).
        progress: show a tqdm progress bar (over structures; over the sampler's steps
            when everything fits in one batch).

    Example::

        gen = Generator("model.ckpt", sampler="fast")
        frames = gen.sample("Li16", pressure=50, n=8, seed=0)
    """

    def __init__(
        self,
        ckpt: str | os.PathLike | Any,
        device: str | torch.device = "cpu",
        sampler: str | Any = "fast",
        guidance_scale: float = 1.0,
        batch_size: int = 64,
        checks: StructureChecks | None = None,
        progress: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.batch_size = check_num_samples(batch_size, "batch_size")
        try:
            gs = float(guidance_scale)
        except (TypeError, ValueError):
            raise GencrystalError(f"guidance_scale={guidance_scale!r} is not a number") from None
        if not math.isfinite(gs) or gs < 0:
            raise GencrystalError(f"guidance_scale={guidance_scale!r} must be a finite number >= 0")
        self.guidance_scale = gs
        if isinstance(sampler, str) and sampler not in available_samplers():
            raise GencrystalError(f"sampler={sampler!r} is unknown (use one of {', '.join(available_samplers())})")
        self.sampler = sampler
        self.checks = checks if checks is not None else StructureChecks()
        self.progress = bool(progress)
        if isinstance(ckpt, (str, os.PathLike)):
            self.ckpt = str(resolve_checkpoint(ckpt))
            self.module = load_module(self.ckpt, self.device)
        else:
            self.ckpt = str(getattr(ckpt, "ckpt_path", None) or f"<{type(ckpt).__name__}>")
            self.module = ckpt
            if hasattr(ckpt, "to"):
                ckpt.to(self.device)
            if hasattr(ckpt, "eval"):
                ckpt.eval()
        resolve = getattr(self.module, "resolve_sampler", None)
        if callable(resolve):  # a flow checkpoint runs its flow sampler for the diffusion names
            self.sampler = resolve(self.sampler)

    # ------------------------------------------------------------------ model facts
    @property
    def max_atoms(self) -> int:
        """Largest atom count per cell the model was trained for."""
        return int(self.module.max_atoms)

    @property
    def csp(self) -> bool:
        """True for a CSP model (atom types fixed by the composition)."""
        return bool(self.module.csp)

    @property
    def pressure_range(self) -> tuple[float, float]:
        """(min, max) pressure in GPa seen in training."""
        lo, hi = self.module.pressure_range
        return float(lo), float(hi)

    @property
    def sampler_name(self) -> str:
        """The sampler as a short string for reports (``fast``, ``pc``, or ``custom``)."""
        return describe_sampler(self.sampler)

    @property
    def network_passes_per_step(self) -> int:
        """Network forward passes per sampler evaluation: 2 under classifier-free guidance
        (conditional + unconditional), else 1."""
        return 1 if self.guidance_scale in (0.0, 1.0) else 2

    # ------------------------------------------------------------------ validation
    def validate(self, requests: Sequence[SampleRequest]) -> list[str]:
        """Check requests against the model; raise on errors, return warning lines.

        Errors: no composition with a CSP model, more atoms per cell than ``max_atoms``,
        an element beyond the model's 100-element vocabulary, nothing to sample.
        Warnings: a pressure outside the trained range, an element absent from the
        training data.
        """
        if not requests:
            raise GencrystalError("nothing to sample: no requests")
        if total_samples(requests) < 1:
            raise GencrystalError("nothing to sample: every request asks for 0 samples")
        out: list[str] = []
        lo, hi = self.pressure_range
        seen: set[float] = set()
        seen_el: set[tuple] = set()
        for r in requests:
            if r.composition is None:
                if self.csp:
                    raise GencrystalError(
                        f"checkpoint {self.ckpt!r} is a CSP model: composition= is required (e.g. composition=Li16)"
                    )
                if r.chemical_system is not None:
                    self._check_elements(
                        [int(_z(s)) for s in r.chemical_system], f"chemical_system={'-'.join(r.chemical_system)}"
                    )
            else:
                n = r.num_atoms  # not None: the request has a composition
                if n is not None and n > self.max_atoms:
                    z = f" (Z={r.formula_units} of {r.formula})" if r.formula_units is not None else ""
                    raise GencrystalError(
                        f"composition {r.label}{z} has {n} atoms per cell; the model was trained for at most "
                        f"{self.max_atoms} (checkpoint {self.ckpt!r})"
                    )
                self._check_elements(composition_to_atomic_numbers(r.composition), f"composition {r.label}")
                unseen = self._unseen_elements(r.composition)
                if unseen and (r.label, tuple(unseen)) not in seen_el:
                    seen_el.add((r.label, tuple(unseen)))
                    out.append(
                        f"composition {r.label}: element(s) {', '.join(unseen)} never occur in the training data "
                        f"of {self.ckpt!r}; samples are an extrapolation"
                    )
            if not (lo - 1e-9 <= r.pressure_gpa <= hi + 1e-9) and r.pressure_gpa not in seen:
                seen.add(r.pressure_gpa)
                out.append(
                    f"pressure={r.pressure_gpa:g} GPa is outside the trained range {lo:g}-{hi:g} GPa "
                    f"of {self.ckpt!r}; samples are an extrapolation"
                )
        return out

    def _unseen_elements(self, composition) -> list[str]:
        """Elements of ``composition`` absent from the training set (empty when unknown)."""
        stats = getattr(self.module, "data_stats", None)
        counts = getattr(stats, "element_counts", None)
        if not counts:
            return []
        return [str(el) for el in composition.elements if int(el.Z) not in counts]

    def _check_elements(self, numbers: Sequence[int], what: str) -> None:
        bad = sorted({z for z in numbers if z > NUM_ELEMENTS})
        if bad:
            raise GencrystalError(f"{what}: element Z={bad[0]} is beyond the model's {NUM_ELEMENTS}-element vocabulary")

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        composition: str | Any | None,
        pressure: float,
        n: int,
        seed: int | None = None,
        formula_units: str | int | Sequence[int] | None = None,
        output: Literal["atoms", "structure"] = "atoms",
        chemical_system: str | Sequence[str] | None = None,
    ) -> list:
        """Sample ``n`` structures of ``composition`` at ``pressure`` GPa.

        Args:
            composition: cell composition (``"Li16"``), or a reduced formula together
                with ``formula_units`` (``"SiO2"``, ``"1-4"``); ``None`` for de novo.
            pressure: pressure in GPa (>= 0).
            n: number of structures (spread over the Z values when enumerating; the
                seed picks which Z values get the remainder, see :func:`split_evenly`).
            seed: random seed; the same seed gives identical structures.
            formula_units: Z values to enumerate (``"1-4"``, ``2``, ``[1, 2]``).
            output: ``"atoms"`` for ASE ``Atoms``, ``"structure"`` for pymatgen
                ``Structure`` (frame info copied to ``Structure.properties``).
            chemical_system: de-novo element restriction such as ``"Li-B"``.

        Returns:
            A list of ``n`` structures; flagged ones (see :class:`gencrystal.checks.StructureChecks`) are kept
            and carry ``flagged=True`` and their ``flags`` in the info/properties.
        """
        if output not in ("atoms", "structure"):
            raise GencrystalError(f"output={output!r} is unknown (use atoms or structure)")
        seed = resolve_seed(seed)
        requests = expand_request(composition, pressure, n, formula_units, chemical_system, rotate=seed)
        run = self.run(requests, seed=seed)
        for line in run.warnings:
            category = PressureRangeWarning if line.startswith("pressure=") else SamplingWarning
            warnings.warn(line, category, stacklevel=2)
        if output == "atoms":
            return run.frames
        from gencrystal.structures import to_structure

        structures = []
        for a in run.frames:
            s = to_structure(a)
            s.properties = dict(a.info)
            structures.append(s)
        return structures

    def run(self, requests: Sequence[SampleRequest], seed: int | None = None, progress: bool | None = None) -> SampleRun:
        """Validate and sample many requests in batches of ``batch_size``.

        Samples of different compositions and pressures share batches. The whole run is
        driven by one seed (drawn at random when ``None`` and recorded): the same seed,
        requests and batch size give identical structures. The caller's global torch
        RNG state is left untouched.
        """
        requests = list(requests)
        warn_lines = self.validate(requests)
        seed = resolve_seed(seed)
        rng = np.random.default_rng(seed)
        items = self._plan(requests, rng)
        show = self.progress if progress is None else bool(progress)
        frames: list[Atoms] = []
        nfe_per_sample, nfe_total, num_batches = 0, 0, 0
        t0 = time.perf_counter()
        from tqdm.auto import tqdm

        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad(), deterministic_algorithms():
            torch.manual_seed(seed)
            gen = torch.Generator(device=self.device)
            gen.manual_seed(seed)
            batches = self._batches(items)
            # one batch: a bar over the sampler's steps; several: a bar over structures
            step_bar = show and len(batches) == 1
            with tqdm(total=len(items), desc="sampling", unit="struct", disable=not show or step_bar, leave=False) as bar:
                for batch in batches:
                    out = self._sample_batch(batch, gen, progress=step_bar)
                    nfe = int(out.get("nfe", 0))
                    nfe_per_sample = max(nfe_per_sample, nfe)
                    nfe_total += nfe
                    num_batches += 1
                    for atoms, item in zip(outputs_to_atoms(out), batch):
                        frames.append(self._annotate(atoms, item, len(frames), seed, requests))
                    bar.update(len(batch))
        wall = time.perf_counter() - t0
        return SampleRun(
            frames, requests, seed, nfe_per_sample, nfe_total, num_batches, wall, warn_lines, self.network_passes_per_step
        )

    # ------------------------------------------------------------------ internals
    def _plan(self, requests: Sequence[SampleRequest], rng: np.random.Generator) -> list[dict]:
        """One entry per structure: request index, atomic numbers (or None) and atom count."""
        items: list[dict] = []
        for ri, r in enumerate(requests):
            if r.composition is not None:
                numbers = composition_to_atomic_numbers(r.composition)
                items.extend({"request": ri, "numbers": numbers, "num_atoms": len(numbers)} for _ in range(r.num_samples))
            else:
                counts = self._draw_num_atoms(r.num_samples, rng)
                items.extend({"request": ri, "numbers": None, "num_atoms": int(c)} for c in counts)
        for it in items:
            r = requests[it["request"]]
            it["pressure"] = r.pressure_gpa
            it["system"] = None if (r.chemical_system is None or self.csp) else [_z(s) for s in r.chemical_system]
        return items

    def _batches(self, items: list[dict]) -> list[list[dict]]:
        """Chunks of at most ``batch_size`` items; fixed-type and de-novo items never share a batch."""
        out: list[list[dict]] = []
        for it in items:
            fixed = it["numbers"] is not None
            if out and len(out[-1]) < self.batch_size and (out[-1][0]["numbers"] is not None) == fixed:
                out[-1].append(it)
            else:
                out.append([it])
        return out

    def _draw_num_atoms(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Atom counts for de-novo samples, drawn from the training histogram (≤ max_atoms)."""
        counts, probs = num_atoms_distribution(self.module)
        keep = counts <= self.max_atoms
        counts, probs = counts[keep], probs[keep]
        if counts.size == 0 or probs.sum() <= 0:
            raise GencrystalError(f"checkpoint {self.ckpt!r} has no usable atom-count histogram for de-novo sampling")
        return rng.choice(counts, size=n, p=probs / probs.sum())

    def _sample_batch(self, batch: list[dict], gen: torch.Generator, progress: bool = False) -> dict:
        dev = self.device
        num_atoms = torch.tensor([it["num_atoms"] for it in batch], dtype=torch.long, device=dev)
        conditions = {"pressure": torch.tensor([it["pressure"] for it in batch], dtype=torch.float32, device=dev)}
        if batch[0]["numbers"] is not None:
            atom_types = torch.tensor([z for it in batch for z in it["numbers"]], dtype=torch.long, device=dev)
            conditions["composition"] = torch.cat([composition_vector(it["numbers"]) for it in batch]).to(dev)
        else:
            # de novo without a composition: the condition is absent (the model's null embedding)
            atom_types = None
        systems = [it["system"] for it in batch]
        if any(sys_ is not None for sys_ in systems):
            # de novo restricted to a chemical system: the model masks all other element logits
            allowed = torch.ones(len(batch), NUM_ELEMENTS, dtype=torch.bool, device=dev)
            for row, sys_ in enumerate(systems):
                if sys_ is not None:
                    allowed[row] = False
                    allowed[row, [z - 1 for z in sys_]] = True
            conditions["allowed_elements"] = allowed
        try:
            return self.module.sample(
                num_atoms,
                atom_types,
                conditions,
                sampler=self.sampler,
                guidance_scale=self.guidance_scale,
                generator=gen,
                progress=progress,
            )
        except torch.OutOfMemoryError:
            raise GencrystalError(
                f"out of memory on {self.device} sampling a batch of {len(batch)} crystals "
                f"({int(num_atoms.sum())} atoms); lower batch_size={self.batch_size}"
            ) from None

    def _annotate(self, atoms: Atoms, item: dict, index: int, seed: int, requests: Sequence[SampleRequest]) -> Atoms:
        r = requests[item["request"]]
        check = self.checks.evaluate(atoms)
        flags = list(check["flags"])
        if item["numbers"] is not None and sorted(atoms.numbers.tolist()) != sorted(item["numbers"]):
            flags.append("composition_mismatch")
        if r.chemical_system is not None and not set(atoms.get_chemical_symbols()) <= set(r.chemical_system):
            flags.append("outside_chemical_system")
        requested = r.label if r.composition is not None else atoms.get_chemical_formula(mode="metal")
        atoms.info.update(
            {
                "composition": requested,
                "pressure_gpa": float(r.pressure_gpa),
                "sample_index": int(index),
                "seed": int(seed),
                "ckpt": self.ckpt,
                "request_index": int(item["request"]),
                "formula": r.formula or requested,
                "formula_units": int(r.formula_units) if r.formula_units is not None else 0,
                "sampler": self.sampler_name,
                "flagged": bool(flags),
                "flags": ",".join(flags) if flags else "none",
                "min_distance": float(check["min_distance"]),
                "volume_per_atom": float(check["volume_per_atom"]),
            }
        )
        return atoms


def available_samplers() -> list[str]:
    """Sampler names with a config in ``conf/sampler/`` (e.g. ``fast``, ``pc``)."""
    from gencrystal.config import conf_dir

    return sorted(p.stem for p in (conf_dir() / "sampler").glob("*.yaml"))


def describe_sampler(sampler: Any) -> str:
    """A name for a sampler given as a name or a config: the matching ``conf/sampler/<name>.yaml``
    when the config equals one of them, else ``custom``."""
    if isinstance(sampler, str):
        return sampler
    from omegaconf import DictConfig, OmegaConf

    from gencrystal.config import conf_dir

    if isinstance(sampler, (dict, DictConfig)):
        mine = OmegaConf.to_container(OmegaConf.create(sampler), resolve=True)
        for path in sorted((conf_dir() / "sampler").glob("*.yaml")):
            if OmegaConf.to_container(OmegaConf.load(path), resolve=True) == mine:
                return path.stem
        return "custom"
    return type(sampler).__name__


def num_atoms_distribution(module: Any) -> tuple[np.ndarray, np.ndarray]:
    """(atom counts, probabilities) of the training set, from ``module.data_stats``."""
    stats = getattr(module, "data_stats", None)
    if stats is None or not getattr(stats, "num_atoms_hist", None):
        raise GencrystalError("the checkpoint carries no atom-count histogram (data_stats) for de-novo sampling")
    counts, probs = stats.num_atoms_distribution()
    keep = (counts >= 1) & (probs > 0)
    return counts[keep], probs[keep]


@contextlib.contextmanager
def deterministic_algorithms():
    """Run the block with torch's deterministic algorithms (``torch.use_deterministic_algorithms``;
    ops without one warn instead of failing), restoring the caller's setting afterwards.

    With the sampler's noise drawn from one seeded ``torch.Generator`` this makes the same
    command with the same seed give the same structures on the same machine (CPU or GPU;
    ``CUBLAS_WORKSPACE_CONFIG`` is set for cuBLAS when unset). Different CPUs or GPUs may
    still differ in the last bits of floating-point sums, which a long sampling chain can
    amplify: the demo's claims are measured over many seeds (reports/demo_seeds.md).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


def resolve_seed(seed: Any) -> int:
    """``seed`` as a non-negative int (a one-line error otherwise); ``None`` draws one."""
    if seed is not None:
        return _check_seed(seed)
    entropy = np.random.SeedSequence().entropy  # an int when SeedSequence draws it itself
    assert isinstance(entropy, int)
    return entropy % (2**31)


def _check_seed(seed: Any) -> int:
    try:
        s = int(seed)
    except (TypeError, ValueError):
        raise GencrystalError(f"seed={seed!r} is not an integer") from None
    if s < 0 or s != float(seed):
        raise GencrystalError(f"seed={seed!r} must be a non-negative integer")
    return s


def _z(symbol: str) -> int:
    from pymatgen.core import Element

    return Element(symbol).Z
