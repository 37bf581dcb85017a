"""``gencrystal train experiment=NAME``: Lightning training driven by the Hydra config.

The run directory (``out=``) holds ``checkpoints/{last,best}.ckpt``, the CSV log
(``csv/``), the offline W&B run (``wandb/``) and ``config.yaml``. ``resume=true``
continues from ``checkpoints/last.ckpt`` — global step, optimizer, scheduler, EMA and
loop state included (Lightning restores them). Checkpoints are written atomically
(temporary file + rename), so a kill during a save leaves the previous one intact.

``init_from=CKPT`` starts a *new* run from another checkpoint's weights (fine-tuning, e.g.
from an MP-20 model to a pressure database): data statistics, lattice prior and
condition scalers are fitted on the new data, optimizer and step start afresh.

Multi-GPU / multi-node: ``trainer=ddp`` (Lightning's DDP strategy). The CLI composes
the config with Hydra's compose API (no ``@hydra.main``), so Lightning's launcher,
``torchrun`` and SLURM ``srun`` can re-run the same command line on every rank. The
global batch ``batch_size`` stays fixed: each device gets
``batch_size // (devices · num_nodes · accumulate_grad_batches)``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from gencrystal.errors import GencrystalError

log = logging.getLogger(__name__)


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def resolve_device_count(trainer_cfg: DictConfig | dict) -> tuple[int, int]:
    """(devices per node, nodes) the trainer will use, for the global-batch division.

    ``devices`` may be an int, a list of ids or ``auto``/``-1`` (then ``LOCAL_WORLD_SIZE``
    from torchrun, ``SLURM_NTASKS_PER_NODE`` or the visible GPU count is used)."""
    # a trainer node is the keyword arguments of pytorch_lightning.Trainer: any may be left out
    devices = trainer_cfg.get("devices", 1)
    nodes = _int_or(trainer_cfg.get("num_nodes", 1), 1)
    accel = str(trainer_cfg.get("accelerator", "cpu"))
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices), nodes
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()]), nodes
    n = _int_or(devices, -1)
    if n > 0:
        return n, nodes
    for key in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        if os.environ.get(key, "").split("(")[0].isdigit():
            return int(os.environ[key].split("(")[0]), nodes
    if accel in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return max(1, torch.cuda.device_count()), nodes
    return 1, nodes


def per_device_batch_size(global_batch: int, devices: int, nodes: int, accumulate: int) -> int:
    """``global // (devices · nodes · accumulate)``; error when that is below 1."""
    denom = max(1, devices) * max(1, nodes) * max(1, accumulate)
    per = global_batch // denom
    if per < 1:
        raise GencrystalError(f"batch_size={global_batch} is smaller than devices·nodes·accumulate = {denom}")
    if per * denom != global_batch:
        log.warning(
            "global batch %d is not divisible by %d: using %d per device (%d in all)", global_batch, denom, per, per * denom
        )
    return per


def fit_priors(train_ds, cfg: DictConfig) -> tuple[dict, dict]:
    """Fit the lattice prior and the scalar-condition scalers on the training split.

    Returns ``(lattice_prior params dict, {condition name: [mean, std]})``."""
    from gencrystal.model.lattice_prior import fit_lattice_prior

    # the model's lattice_prior node (conf/model/cspnet.yaml) holds fit_lattice_prior's keyword arguments
    pcfg = cfg.model.get("lattice_prior")
    kwargs = OmegaConf.to_container(pcfg, resolve=True) if pcfg is not None else {}
    assert isinstance(kwargs, dict)
    params = fit_lattice_prior(
        train_ds.lattices.double().numpy(),
        train_ds.num_atoms.numpy(),
        train_ds.pressure.double().numpy(),
        **{str(k): v for k, v in kwargs.items()},
    )
    scalers: dict[str, list[float]] = {}
    for name, node in (cfg.model.get("conditions") or {}).items():
        if "ScalarCondition" not in str(node.get("_target_", "")):
            continue
        column = str(node.get("column", name))
        if node.get("mean") is not None and node.get("std") is not None:
            scalers[name] = [float(node.mean), float(node.std)]
            continue
        if column == "pressure":
            values = train_ds.pressure.double()
        elif column in train_ds.table.columns:
            values = torch.as_tensor(train_ds.table[column].to_numpy(dtype=float))
        else:
            raise GencrystalError(f"condition {name!r}: the training data has no column {column!r}")
        scalers[name] = list(basis_covering_scaler(values, float(node.get("start", -2.0)), float(node.get("stop", 5.0))))
    return params.to_dict(), scalers


def basis_covering_scaler(values: torch.Tensor, start: float, stop: float) -> tuple[float, float]:
    """Z-scoring ``(mean, std)`` of a scalar condition whose training range lies inside the
    Gaussian basis ``[start, stop]`` (z units).

    The plain data std is widened when needed: a pressure set dominated by 0 GPa with a few
    rows at 50–100 GPa would otherwise put those rows (and every sampling request there)
    outside the basis, where the embedding fades to zero and pressure is not conditioned."""
    values = values.double()
    mean, std = float(values.mean()), float(values.std(unbiased=False))
    lo, hi = float(values.min()), float(values.max())
    if stop > 0 and hi > mean:
        std = max(std, (hi - mean) / stop)
    if start < 0 and lo < mean:
        std = max(std, (mean - lo) / -start)
    return mean, std


def init_weights_from(module: torch.nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Copy the learnable weights of checkpoint ``path`` into ``module`` (fine-tuning start).

    Only parameters are copied (network and EMA copies alike), and only where name and
    shape agree; buffers — the condition scalers fitted on the new data, the EMA step
    counter — stay as ``module`` has them, and the lattice prior and data statistics come
    from the new training data. Returns ``{"copied": [...], "skipped": [...], "missing": [...]}``
    (skipped: present in both with different shapes; missing: not in the checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise GencrystalError(f"init_from={str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        source = ckpt["state_dict"]
    except Exception as exc:
        raise GencrystalError(
            f"init_from={str(path)!r} is not a gencrystal checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    params = dict(module.named_parameters())  # includes the EMA copy (ema.module.*)
    report: dict[str, list[str]] = {"copied": [], "skipped": [], "missing": []}
    with torch.no_grad():
        for name, target in params.items():
            value = source.get(name)
            if value is None:
                report["missing"].append(name)
            elif tuple(value.shape) != tuple(target.shape):
                report["skipped"].append(name)
            else:
                target.copy_(value.to(target))
                report["copied"].append(name)
    if not report["copied"]:
        raise GencrystalError(f"init_from={str(path)!r} shares no weight with this model (different architecture?)")
    return report


class _AtomicCheckpointIO:
    """Factory for a Lightning CheckpointIO that writes through a temporary file + rename."""

    @staticmethod
    def make():
        from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

        class AtomicCheckpointIO(TorchCheckpointIO):
            def save_checkpoint(self, checkpoint, path, storage_options=None):
                path = Path(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
                try:
                    torch.save(checkpoint, tmp)
                    os.replace(tmp, path)
                finally:
                    if tmp.exists():
                        tmp.unlink()

        return AtomicCheckpointIO()


def _loggers(cfg: DictConfig, run_dir: Path) -> list:
    from hydra.utils import instantiate
    from pytorch_lightning.loggers import CSVLogger

    os.environ.setdefault("WANDB_MODE", "offline")
    loggers = []
    for node in (cfg.logger or {}).values():  # None under ~logger: CSV only
        if node is None or not node.get("_target_"):
            continue
        if "Wandb" in str(node._target_):
            os.environ.setdefault("WANDB_DIR", str(run_dir))
            os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(instantiate(node))
    if not any(isinstance(lg, CSVLogger) for lg in loggers):
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv"))
    return loggers


def _callbacks(cfg: DictConfig, has_val: bool, has_scheduler: bool) -> list:
    """The Lightning callbacks of ``cfg.callbacks`` (conf/callbacks), built by ``_target_``, without
    those that monitor a metric when there is no validation and without a LearningRateMonitor when
    there is no scheduler."""
    from gencrystal.config import instantiate

    cbs = []
    for name, node in (cfg.callbacks or {}).items():  # None under ~callbacks
        if node is None or not node.get("_target_"):
            continue
        if node.get("monitor") and not has_val:
            continue
        if str(node._target_).endswith("LearningRateMonitor") and not has_scheduler:
            continue
        cbs.append(instantiate(node, f"callbacks.{name}"))
    return cbs


def train(cfg: DictConfig, callbacks: Sequence | None = None) -> Path:
    """Train the model described by ``cfg`` (composed ``conf/train.yaml``).

    Returns the best checkpoint (lowest ``val/loss``) when validation ran, else the last.
    ``callbacks`` adds Lightning callbacks (tests use it)."""
    import pytorch_lightning as pl

    from gencrystal.config import instantiate
    from gencrystal.data.datamodule import CrystalDataModule
    from gencrystal.model.module import CrystalDiffusionModule

    run_dir = Path(str(cfg.out)).expanduser().resolve()
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    ckpt_path = None
    if bool(cfg.resume):
        if last.is_file():
            ckpt_path = str(last)
        else:
            log.warning("resume=true but %s does not exist: starting a fresh run", last)
    elif last.is_file():
        raise GencrystalError(
            f"run directory {str(run_dir)!r} already holds a checkpoint; "
            "pass resume=true to continue it or out=<new dir> for a new run"
        )
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(tcfg, dict)  # the trainer node is a mapping (pytorch_lightning.Trainer keyword arguments)
    devices, nodes = resolve_device_count(tcfg)
    accumulate = int(tcfg.get("accumulate_grad_batches", 1))
    per_device = per_device_batch_size(int(cfg.batch_size), devices, nodes, accumulate)
    tcfg["num_nodes"] = nodes
    if str(tcfg.get("devices", 1)) in ("auto", "-1"):
        tcfg["devices"] = devices  # resolved from torchrun / SLURM / visible GPUs

    dm = CrystalDataModule(
        cfg.data,
        batch_size=per_device,
        num_workers=int(cfg.num_workers),
        data_root=cfg.data_root,
        eval_batch_size=int(cfg.eval_batch_size or per_device),
        seed=int(cfg.seed),
    )
    train_ds = dm.dataset("train")  # bad data fails here, before anything is written
    if ckpt_path is not None:
        hp = torch.load(ckpt_path, map_location="cpu", weights_only=False).get("hyper_parameters", {})
        stats, prior, scalers = hp.get("data_stats"), hp.get("lattice_prior"), hp.get("condition_scalers")
    else:
        stats = train_ds.stats.to_dict()
        prior, scalers = fit_priors(train_ds, cfg)
    module = CrystalDiffusionModule(cfg, data_stats=stats, lattice_prior=prior, condition_scalers=scalers)
    if ckpt_path is None and cfg.init_from:
        rep = init_weights_from(module, str(cfg.init_from))
        log.warning(
            "init_from=%s: %d weight tensors copied, %d skipped (shape), %d not in the checkpoint",
            cfg.init_from,
            len(rep["copied"]),
            len(rep["skipped"]),
            len(rep["missing"]),
        )
    run_dir.mkdir(parents=True, exist_ok=True)  # only now: a bad init_from leaves nothing behind
    if ckpt_path is None and int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0:
        from gencrystal.io import atomic_write

        with atomic_write(run_dir / "config.yaml") as fh:
            fh.write(OmegaConf.to_yaml(cfg, resolve=True))

    has_val = float(tcfg.get("limit_val_batches", 1.0) or 0) > 0
    if has_val:
        try:
            dm.dataset("val")
        except GencrystalError as exc:
            log.warning("no validation split (%s): training without validation; best.ckpt = last.ckpt", exc)
            has_val = False
    cbs = _callbacks(cfg, has_val=has_val, has_scheduler=bool(cfg.optim.get("scheduler")))
    loggers = _loggers(cfg, run_dir)
    cbs.extend(callbacks or [])
    if not has_val:
        tcfg["limit_val_batches"] = 0
    tcfg.setdefault("_target_", "pytorch_lightning.Trainer")
    trainer: pl.Trainer = instantiate(
        tcfg, "trainer", callbacks=cbs, logger=loggers, default_root_dir=str(run_dir), plugins=[_AtomicCheckpointIO.make()]
    )
    if not has_val:
        dm.val_dataloader = lambda: []  # type: ignore[method-assign]
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    trainer.save_checkpoint(str(last))
    best = ckpt_dir / "best.ckpt"
    return best if has_val and best.is_file() else last
