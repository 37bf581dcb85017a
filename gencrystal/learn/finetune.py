"""Fine-tune a committee of CHGNet models on DFT labels with CHGNet's own trainer.

Every member starts from the shipped CHGNet weights (``base_model``, 0.3.0 by default)
and is trained with :class:`chgnet.trainer.Trainer` on a bootstrap resample of the
labels (its own seed), on energies per atom (eV/atom), forces (eV/Å) and stresses.
CHGNet's :class:`~chgnet.data.dataset.StructureData` expects stresses as VASP prints
them (kBar, positive = compressive) and multiplies them by −0.1 to get GPa in ASE's
sign (positive = tensile); :func:`chgnet_stress_input` converts ASE stresses to that.

DFT codes and CHGNet's training data use different energy zeros. Before training, a
per-element shift δ_el (eV/atom) is fitted by least squares so that the shifted DFT
energies ``E_dft/N + Σ_el x_el δ_el`` best match the base model on the low-pressure
labels (x_el: element fractions; under strong compression the base model is what is
being corrected, so those labels are left out of the fit); the shifts are stored in
``committee.json``. Volumes, forces and
stresses do not depend on them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.potentials.committee import write_committee_meta


@dataclass
class FinetuneSettings:
    """Committee fine-tuning settings (``conf/learn.yaml: finetune``).

    Attributes:
        base_model: shipped CHGNet weights every member starts from (``0.3.0``).
        n_members: committee size.
        bootstrap: train each member on a bootstrap resample (with replacement) of the labels.
        epochs: training epochs per member.
        batch_size: structures per optimiser step.
        learning_rate: Adam learning rate (cosine decay to 1 % over the run).
        energy_loss_ratio, force_loss_ratio, stress_loss_ratio: CHGNet loss weights
            (energy in eV/atom, forces in eV/Å, stress in GPa).
        criterion: CHGNet loss, ``MSE``, ``Huber`` (δ = 0.1, robust to the hundreds-of-GPa
            stress errors of strongly compressed frames) or ``MAE``.
        offset_fit_max_gpa: the per-element energy shift is fitted on labels whose DFT
            pressure |P| is at most this (GPa), where the base model is trustworthy; the
            lowest-pressure labels when none are.
        seed: base seed; member m uses ``seed + m``.
        freeze: parameter-name prefixes kept fixed (e.g. ``["atom_embedding"]``).
        device: ``cpu`` or ``cuda``.
    """

    base_model: str = "0.3.0"
    n_members: int = 3
    bootstrap: bool = True
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    energy_loss_ratio: float = 1.0
    force_loss_ratio: float = 1.0
    stress_loss_ratio: float = 0.1
    criterion: str = "Huber"
    offset_fit_max_gpa: float = 10.0
    seed: int = 0
    freeze: Sequence[str] = field(default_factory=list)
    device: str = "cpu"


def chgnet_stress_input(stress_voigt_ev_a3: np.ndarray) -> np.ndarray:
    """ASE stress (Voigt, eV/Å³, positive = tensile) → the 3×3 array CHGNet's
    ``StructureData`` expects (kBar, positive = compressive, as VASP prints it)."""
    from ase import units
    from ase.stress import voigt_6_to_full_3x3_stress

    full = voigt_6_to_full_3x3_stress(np.asarray(stress_voigt_ev_a3, dtype=float))
    return -10.0 * full / units.GPa


def label_arrays(labels: Sequence[Atoms]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Energies (eV, total), forces (eV/Å) and stresses (Voigt eV/Å³) of labelled frames
    (each frame carries a calculator with ``energy``, ``forces``, ``stress`` results)."""
    energies, forces, stresses = [], [], []
    for i, a in enumerate(labels):
        if a.calc is None or not {"energy", "forces", "stress"} <= set(a.calc.results):
            raise GencrystalError(f"label {i} ({a.get_chemical_formula()}) lacks energy/forces/stress")
        energies.append(float(a.calc.results["energy"]))
        forces.append(np.asarray(a.calc.results["forces"], dtype=float))
        s = np.asarray(a.calc.results["stress"], dtype=float)
        if s.shape == (3, 3):
            from ase.stress import full_3x3_to_voigt_6_stress

            s = full_3x3_to_voigt_6_stress(s)
        stresses.append(s)
    return np.array(energies), forces, stresses


def fit_energy_offsets(labels: Sequence[Atoms], reference_energies_per_atom: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Per-element shifts δ_el (eV/atom) with ``E_dft/N + Σ x_el δ_el ≈ E_ref/N`` (least squares).

    Args:
        labels: labelled frames (DFT energy in ``calc.results['energy']``, eV).
        reference_energies_per_atom: the base model's energy per atom on the same frames.
    """
    energies, _, _ = label_arrays(labels)
    elements = sorted({s for a in labels for s in a.get_chemical_symbols()})
    x = np.zeros((len(labels), len(elements)))
    for i, a in enumerate(labels):
        sym = a.get_chemical_symbols()
        for j, el in enumerate(elements):
            x[i, j] = sym.count(el) / len(a)
    n = np.array([len(a) for a in labels], dtype=float)
    y = np.asarray(reference_energies_per_atom, dtype=float) - energies / n
    delta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return {el: float(d) for el, d in zip(elements, delta)}


def shifted_energies_per_atom(labels: Sequence[Atoms], offsets: dict[str, float]) -> np.ndarray:
    """DFT energies per atom plus the fitted element shifts (eV/atom), the training targets."""
    energies, _, _ = label_arrays(labels)
    out = []
    for e, a in zip(energies, labels):
        sym = a.get_chemical_symbols()
        out.append(e / len(a) + sum(offsets.get(s, 0.0) for s in sym) / len(a))
    return np.array(out)


def load_base_model(name: str = "0.3.0", device: str = "cpu"):
    """The shipped CHGNet model ``name`` (weights inside the chgnet wheel), or the CHGNet
    checkpoint at the path ``name`` (a fine-tuned trunk)."""
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(open(os.devnull, "w")):
        if Path(str(name)).is_file():
            model = CHGNet.from_file(str(name)).to(device)
        else:
            model = CHGNet.load(model_name=name, use_device=device, verbose=False)
    model.graph_converter.set_isolated_atom_response("ignore")
    return model


def base_energies_per_atom(labels: Sequence[Atoms], base_model: str = "0.3.0", device: str = "cpu") -> np.ndarray:
    """The base CHGNet's energy per atom (eV/atom) on every labelled frame."""
    from gencrystal.structures import to_structure

    model = load_base_model(base_model, device)
    graphs = [model.graph_converter(to_structure(a)) for a in labels]
    preds = model.predict_graph(graphs, task="e", batch_size=16)
    preds = [preds] if isinstance(preds, dict) else preds
    return np.array([float(np.asarray(p["e"]).reshape(())) for p in preds])


def offset_fit_labels(labels: Sequence[Atoms], max_gpa: float, settings: FinetuneSettings) -> tuple[list[Atoms], np.ndarray]:
    """The labels the energy shift is fitted on (DFT |P| ≤ ``max_gpa`` GPa, else the lowest-|P|
    ones, at least one per element) and the base model's energies per atom on them."""
    from gencrystal.units import ev_per_a3_to_gpa

    _, _, stresses = label_arrays(labels)
    p = np.array([abs(ev_per_a3_to_gpa(float(np.mean(s[:3])))) for s in stresses])
    chosen = [i for i in range(len(labels)) if p[i] <= max_gpa]
    n_el = len({x for a in labels for x in a.get_chemical_symbols()})
    if len(chosen) < n_el:
        chosen = sorted(np.argsort(p)[: max(n_el, 1)].tolist())
    subset = [labels[i] for i in chosen]
    return subset, base_energies_per_atom(subset, settings.base_model, settings.device)


def train_member(
    labels: Sequence[Atoms],
    targets_per_atom: np.ndarray,
    settings: FinetuneSettings,
    member: int,
    out_file: str | os.PathLike,
    log_file: str | os.PathLike | None = None,
) -> dict:
    """Fine-tune one member from the shipped weights and save it (atomically) to ``out_file``.

    Args:
        labels: labelled frames (forces eV/Å, stress eV/Å³ in their calculator results).
        targets_per_atom: training energies per atom, eV/atom (DFT plus element shifts).
        settings: :class:`FinetuneSettings`.
        member: member index (seed ``settings.seed + member``; its bootstrap resample).
        out_file: the checkpoint path (``.pth.tar``), loadable by ``CHGNet.from_file``.
        log_file: where CHGNet's training printout goes (None: discarded).

    Returns:
        ``{"member", "n_train", "train_mae": {e,f,s}}``: ``n_train`` distinct labels in the
        member's bootstrap resample; ``train_mae`` the MAE (eV/atom, eV/Å, GPa) after the last
        epoch on the first ≤ 2 batches of *all* labels, those outside the resample included.
    """
    import torch
    from chgnet.data.dataset import StructureData, collate_graphs
    from chgnet.trainer import Trainer
    from torch.utils.data import DataLoader, SubsetRandomSampler

    from gencrystal.structures import to_structure

    seed = int(settings.seed) + int(member)
    rng = np.random.default_rng(seed)
    n = len(labels)
    if n == 0:
        raise GencrystalError("cannot fine-tune a committee member on zero labels")
    idx = rng.integers(0, n, size=n) if settings.bootstrap and n > 1 else np.arange(n)
    _, forces, stresses = label_arrays(labels)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    sink = open(log_file, "a") if log_file else open(os.devnull, "w")
    with sink, contextlib.redirect_stdout(sink):
        torch.manual_seed(seed)
        model = load_base_model(settings.base_model, settings.device)
        for name, param in model.named_parameters():
            if any(name.startswith(p) for p in settings.freeze):
                param.requires_grad = False
        data = StructureData(
            [to_structure(a) for a in labels],
            list(map(float, targets_per_atom)),
            [f.tolist() for f in forces],
            stresses=[chgnet_stress_input(s).tolist() for s in stresses],
            structure_ids=list(range(n)),
            graph_converter=model.graph_converter,
            shuffle=False,
        )
        gen = torch.Generator().manual_seed(seed)
        train_loader = DataLoader(
            data,
            batch_size=int(settings.batch_size),
            collate_fn=collate_graphs,
            sampler=SubsetRandomSampler([int(i) for i in idx], generator=gen),
        )
        # CHGNet's trainer validates every epoch; on CPU a fixed subset (≤ 2 batches) keeps that cheap
        val_idx = list(range(min(n, 2 * int(settings.batch_size))))
        val_loader = DataLoader(
            torch.utils.data.Subset(data, val_idx), batch_size=int(settings.batch_size), collate_fn=collate_graphs, shuffle=False
        )
        trainer = Trainer(
            model=model,
            targets="efs",
            energy_loss_ratio=settings.energy_loss_ratio,
            force_loss_ratio=settings.force_loss_ratio,
            stress_loss_ratio=settings.stress_loss_ratio,
            optimizer="Adam",
            scheduler="CosLR",
            criterion=str(settings.criterion),
            epochs=int(settings.epochs),
            learning_rate=float(settings.learning_rate),
            print_freq=10**6,
            torch_seed=seed,
            data_seed=seed + 1,
            use_device=settings.device,
        )
        with tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
            trainer.train(train_loader, val_loader, save_dir=tmp)
            tmp_file = Path(tmp) / "final.pth.tar"
            trainer.save(filename=str(tmp_file))
            os.replace(tmp_file, out_file)
    hist = trainer.training_history
    mae = {k: float(hist[k]["val"][-1]) for k in "efs" if hist.get(k, {}).get("val")}
    return {"member": int(member), "n_train": len(set(idx.tolist())), "train_mae": mae}


def train_committee(
    labels: Sequence[Atoms],
    out_dir: str | os.PathLike,
    settings: FinetuneSettings,
    level_of_theory: str | None = None,
    progress: bool = True,
    **meta,
) -> Path:
    """Fine-tune ``settings.n_members`` members on ``labels`` into ``out_dir`` (resumable:
    members whose checkpoint exists are kept). ``committee.json`` is written last, so a
    directory holding it is complete.

    Returns:
        The committee directory.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    offsets = fit_energy_offsets(*offset_fit_labels(labels, settings.offset_fit_max_gpa, settings))
    targets = shifted_energies_per_atom(labels, offsets)
    members, reports = [], []
    for m in tqdm(range(int(settings.n_members)), desc="fine-tune committee", disable=not progress, leave=False):
        f = out_dir / f"member{m}.pth.tar"
        if not f.is_file():
            reports.append(train_member(labels, targets, settings, m, f, out_dir / "train.log"))
        members.append(f.name)
    write_committee_meta(
        out_dir,
        members,
        energy_offsets=offsets,
        n_labels=len(labels),
        base_model=f"chgnet-{settings.base_model}",
        level_of_theory=level_of_theory or f"chgnet-committee-{out_dir.name}",
        members_report=reports,
        **meta,
    )
    return out_dir


def label_coverage(labels: Sequence[Atoms]) -> dict:
    """What the labels cover: their elements and, per element set, the span of their DFT
    stress pressures −tr(σ)/3 (GPa); ``pressure_gpa`` is the range every element set spans
    (the largest minimum to the smallest maximum, rounded to 1 GPa), the range in which no
    system of the committee extrapolates in pressure."""
    from gencrystal.units import ev_per_a3_to_gpa

    _, _, stresses = label_arrays(labels)
    by_system: dict[str, list[float]] = {}
    for a, st in zip(labels, stresses):
        key = "-".join(sorted(set(a.get_chemical_symbols())))
        by_system.setdefault(key, []).append(-ev_per_a3_to_gpa(float(np.mean(st[:3]))))
    spans = {k: [round(min(v), 1), round(max(v), 1)] for k, v in sorted(by_system.items())}
    lo = max(v[0] for v in spans.values())
    hi = min(v[1] for v in spans.values())
    return {
        "elements": sorted({s for a in labels for s in a.get_chemical_symbols()}),
        "pressure_gpa": [float(np.floor(max(lo, 0.0))), float(np.ceil(hi))],
        "dft_pressure_gpa_by_system": spans,
    }


def _save_slim(src: Path, dst: Path) -> None:
    """Rewrite a CHGNet trainer checkpoint as ``{"model": ...}`` (what ``CHGNet.from_file`` reads)."""
    import torch

    from gencrystal.io import atomic_write

    state = torch.load(src, map_location="cpu", weights_only=False)
    with atomic_write(dst, "wb") as fh:
        torch.save({"model": state["model"]}, fh)


def train_shared_trunk_committee(
    labels: Sequence[Atoms],
    out_dir: str | os.PathLike,
    settings: FinetuneSettings,
    n_heads: int = 4,
    head_epochs: int | None = None,
    level_of_theory: str | None = None,
    progress: bool = True,
    **meta,
) -> Path:
    """Fine-tune a shared-trunk committee (:mod:`gencrystal.potentials.shared_trunk`) into ``out_dir``.

    1. The trunk: one CHGNet fine-tuned from ``settings.base_model`` on *all* labels (no
       bootstrap) → ``trunk.pth.tar``.
    2. ``n_heads`` heads: each starts from the trunk's readout MLP and is fine-tuned for
       ``head_epochs`` (default ``settings.epochs``) on its own bootstrap resample of the labels
       (seed ``settings.seed + 1000 + m``) with every other parameter frozen, so all heads
       read the same atom features.

    Resumable: the trunk and each head (``head<m>.pth.tar``, removed once ``heads.pt`` is
    written) are kept when they exist; ``committee.json`` is written last. A run for other
    labels or settings (``training.json`` holds their key) starts afresh; the same finished
    run returns at once. The energy shift
    (eV/atom per element) is fitted once, as in :func:`train_committee`.

    Returns:
        The committee directory.
    """
    import dataclasses

    from tqdm.auto import tqdm

    from gencrystal.potentials.shared_trunk import write_shared_trunk

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_heads < 2:
        raise GencrystalError(f"n_heads={n_heads} must be at least 2 (the spread needs two heads)")
    import hashlib
    import json

    from gencrystal.io import write_json
    from gencrystal.learn.labels import structure_hash

    # what is being trained: the labels and the settings; a finished or partial run for
    # anything else is started afresh (its trunk and heads would be stale)
    key = hashlib.sha1(
        json.dumps(
            [sorted(structure_hash(a) for a in labels), dataclasses.asdict(settings), int(n_heads), head_epochs], default=str
        ).encode()
    ).hexdigest()[:16]
    marker = out_dir / "training.json"
    done = out_dir / "committee.json"
    previous = json.loads(marker.read_text()).get("key") if marker.is_file() else None
    if previous == key and done.is_file() and json.loads(done.read_text()).get("training_key") == key:
        return out_dir
    if previous != key:
        for f in [done, out_dir / "heads.pt", out_dir / "trunk.pth.tar", *out_dir.glob("head*.pth.tar")]:
            f.unlink(missing_ok=True)
        write_json({"key": key, "n_labels": len(labels)}, marker)
    offsets = fit_energy_offsets(*offset_fit_labels(labels, settings.offset_fit_max_gpa, settings))
    targets = shifted_energies_per_atom(labels, offsets)
    trunk = out_dir / "trunk.pth.tar"
    reports = []
    if not trunk.is_file():
        raw = out_dir / "trunk.train.pth.tar"
        reports.append(
            {
                "trunk": True,
                **train_member(labels, targets, dataclasses.replace(settings, bootstrap=False), 0, raw, out_dir / "train.log"),
            }
        )
        _save_slim(raw, trunk)  # the weights only: no optimizer or scheduler state
        raw.unlink()
    trunk_names = [n for n, _ in load_base_model(str(trunk), settings.device).named_children()]
    frozen = [n for n in trunk_names if n != "mlp"]
    head_settings = dataclasses.replace(
        settings,
        base_model=str(trunk),
        bootstrap=True,
        freeze=frozen,
        epochs=int(head_epochs or settings.epochs),
        seed=int(settings.seed) + 1000,
    )
    states = []
    for m in tqdm(range(int(n_heads)), desc="fine-tune heads", disable=not progress, leave=False):
        f = out_dir / f"head{m}.pth.tar"
        if not f.is_file():
            reports.append({"head": m, **train_member(labels, targets, head_settings, m, f, out_dir / "train.log")})
        states.append({k: v.clone() for k, v in load_base_model(str(f), settings.device).mlp.state_dict().items()})
    meta.setdefault("coverage", label_coverage(labels))
    write_shared_trunk(
        out_dir,
        trunk,
        states,
        energy_offsets=offsets,
        n_labels=len(labels),
        training_key=key,
        base_model=f"chgnet-{settings.base_model}",
        head_epochs=int(head_settings.epochs),
        level_of_theory=level_of_theory or f"chgnet-committee-{out_dir.name}",
        members_report=reports,
        **meta,
    )
    for m in range(int(n_heads)):
        (out_dir / f"head{m}.pth.tar").unlink(missing_ok=True)
    return out_dir
