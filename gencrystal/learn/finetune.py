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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

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
    from ase.stress import voigt_6_to_full_3x3_stress
    from ase import units

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


def fit_energy_offsets(labels: Sequence[Atoms], reference_energies_per_atom: Sequence[float]) -> dict[str, float]:
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
    """The shipped CHGNet model ``name`` (weights inside the chgnet wheel)."""
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(open(os.devnull, "w")):
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
        chosen = sorted(np.argsort(p)[:max(n_el, 1)].tolist())
    subset = [labels[i] for i in chosen]
    return subset, base_energies_per_atom(subset, settings.base_model, settings.device)


def train_member(labels: Sequence[Atoms], targets_per_atom: np.ndarray, settings: FinetuneSettings, member: int,
                 out_file: str | os.PathLike, log_file: str | os.PathLike | None = None) -> dict:
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
        data = StructureData([to_structure(a) for a in labels], list(map(float, targets_per_atom)),
                             [f.tolist() for f in forces], stresses=[chgnet_stress_input(s).tolist() for s in stresses],
                             structure_ids=list(range(n)), graph_converter=model.graph_converter, shuffle=False)
        gen = torch.Generator().manual_seed(seed)
        train_loader = DataLoader(data, batch_size=int(settings.batch_size), collate_fn=collate_graphs,
                                  sampler=SubsetRandomSampler([int(i) for i in idx], generator=gen))
        # CHGNet's trainer validates every epoch; on CPU a fixed subset (≤ 2 batches) keeps that cheap
        val_idx = list(range(min(n, 2 * int(settings.batch_size))))
        val_loader = DataLoader(torch.utils.data.Subset(data, val_idx), batch_size=int(settings.batch_size),
                                collate_fn=collate_graphs, shuffle=False)
        trainer = Trainer(model=model, targets="efs", energy_loss_ratio=settings.energy_loss_ratio,
                          force_loss_ratio=settings.force_loss_ratio, stress_loss_ratio=settings.stress_loss_ratio,
                          optimizer="Adam", scheduler="CosLR", criterion=str(settings.criterion), epochs=int(settings.epochs),
                          learning_rate=float(settings.learning_rate), print_freq=10**6, torch_seed=seed,
                          data_seed=seed + 1, use_device=settings.device)
        with tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
            trainer.train(train_loader, val_loader, save_dir=tmp)
            tmp_file = Path(tmp) / "final.pth.tar"
            trainer.save(filename=str(tmp_file))
            os.replace(tmp_file, out_file)
    hist = trainer.training_history
    mae = {k: float(hist[k]["val"][-1]) for k in "efs" if hist.get(k, {}).get("val")}
    return {"member": int(member), "n_train": int(len(set(idx.tolist()))), "train_mae": mae}


def train_committee(labels: Sequence[Atoms], out_dir: str | os.PathLike, settings: FinetuneSettings,
                    level_of_theory: str | None = None, progress: bool = True, **meta) -> Path:
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
    write_committee_meta(out_dir, members, energy_offsets=offsets, n_labels=len(labels),
                         base_model=f"chgnet-{settings.base_model}",
                         level_of_theory=level_of_theory or f"chgnet-committee-{out_dir.name}",
                         members_report=reports, **meta)
    return out_dir
