"""The one entry point: ``gencrystal <command> [<sub-command>] [positional] key=value ...``.

Every command is a Hydra app over the top-level ``conf/`` directory: the config named
in its :class:`Command` entry is composed with the ``key=value`` overrides of the
command line (the usual Hydra grammar: ``data=mp20``, ``+foo=1``, ``~bar``), then
handed to the command's ``run(cfg)`` function.

The Hydra compose API is used rather than ``@hydra.main`` so that Lightning's DDP
launcher, torchrun and SLURM can re-execute the same command line on every rank
without Hydra's run-directory arguments being appended (the clash MatterGen users hit).

Commands are registered in :data:`COMMANDS` only once they work.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from gencrystal.errors import GencrystalError


@dataclass(frozen=True)
class Command:
    """One sub-command: its words, its Hydra config, its runner and one line of help."""

    words: tuple[str, ...]
    config: str
    target: str  # "module:function" taking the composed DictConfig
    help: str
    positional: tuple[str, ...] = field(default_factory=tuple)  # config keys filled by bare words


COMMANDS: list[Command] = [
    Command(("data", "info"), "data_info", "gencrystal.data.commands:info",
            "Load a dataset, print counts and statistics, write a histogram plot."),
    Command(("data", "download"), "data_download", "gencrystal.data.commands:download",
            "Download the standard CDVAE splits (mp20, perov5, carbon24, mpts52).",
            positional=("dataset",)),
    Command(("relax",), "relax", "gencrystal.relax.commands:run",
            "Relax structures with an ML potential at a pressure (H = E + PV); rank, dedupe, write extxyz/summary."),
    Command(("evaluate", "csp"), "evaluate_csp", "gencrystal.metrics.commands:evaluate_csp",
            "CSP match rate and RMSE of predictions against references (1- or k-sample; metrics.json, CSV, plots)."),
    Command(("evaluate", "dng"), "evaluate_dng", "gencrystal.metrics.commands:evaluate_dng",
            "Generation metrics: validity, COV-R/P, Wasserstein, unique/novel, hull stability, S.U.N."),
    Command(("train",), "train", "gencrystal.model.train:run",
            "Train the conditional crystal diffusion model (Lightning; experiment=NAME, trainer=cpu|gpu|ddp, resume=true)."),
    Command(("db", "build"), "db_build", "gencrystal.db.commands:build",
            "Relax a dataset/structures at several pressures into the ASE database (resumable)."),
    Command(("db", "import"), "db_import", "gencrystal.db.commands:import_",
            "Import labelled structures (VASP runs, CALYPSO results, Cond-CDVAE tables, pymatgen entries, "
            "extxyz/CIF, ASE db) with provenance (resumable).", positional=("import_source", "source")),
    Command(("db", "export"), "db_export", "gencrystal.db.commands:export",
            "Write train/val/test splits of the database grouped by composition (.db + CSV)."),
    Command(("db", "stats"), "db_stats", "gencrystal.db.commands:stats",
            "Print database counts per pressure/element; plot volume per atom vs pressure."),
    Command(("search",), "search", "gencrystal.search.commands:run",
            "Search low-enthalpy structures at a pressure: method=random|pso|generative (resumable; ranking, plot)."),
    Command(("sample",), "sample", "gencrystal.sampling.commands:run",
            "Sample structures for a composition at a pressure (GPa) from a checkpoint; Z enumeration, input=FILE."),
    Command(("validate",), "validate", "gencrystal.dft.validate:run",
            "DFT (GPAW; VASP inputs) re-relaxation of the top-k MLP structures at the same pressure; ranking agreement."),
    Command(("relax", "eos"), "relax_eos", "gencrystal.relax.eos:run",
            "Trust check: MLP vs DFT volumes and enthalpy differences of a structure over a pressure list (table + plot)."),
    Command(("learn",), "learn", "gencrystal.learn.loop:run",
            "Active learning from DFT: committee-uncertain frames -> GPAW labels -> fine-tuned CHGNet committee (resumable)."),
]


def conf_dir() -> Path:
    """The Hydra config directory: ``$GENCRYSTAL_CONF`` or the repository's ``conf/``."""
    env = os.environ.get("GENCRYSTAL_CONF")
    if env:
        return Path(env).resolve()
    return (Path(__file__).resolve().parent.parent / "conf").resolve()


def _usage() -> str:
    width = max(len(" ".join(c.words)) for c in COMMANDS) if COMMANDS else 10
    lines = [
        "usage: gencrystal <command> [key=value ...]",
        "",
        "Machine-learning crystal structure prediction under pressure (units: Å, eV, GPa).",
        "Every command is a Hydra app over conf/: override any entry with key=value.",
        "`gencrystal <command> --cfg` prints the composed config and exits.",
        "",
        "commands:",
    ]
    for c in COMMANDS:
        lines.append(f"  {' '.join(c.words):<{width}}  {c.help}")
    return "\n".join(lines)


def _match(argv: Sequence[str]) -> tuple[Command, list[str]]:
    """Find the command whose words are the longest prefix of ``argv``."""
    best: Command | None = None
    for c in COMMANDS:
        n = len(c.words)
        if tuple(argv[:n]) == c.words and (best is None or n > len(best.words)):
            best = c
    if best is None:
        words = [a for a in argv if "=" not in a and not a.startswith("-")]
        raise GencrystalError(
            f"unknown command {' '.join(words[:2]) or argv[0]!r}; run `gencrystal --help` for the list"
        )
    return best, list(argv[len(best.words):])


def _split_args(cmd: Command, rest: list[str]) -> tuple[list[str], bool]:
    """Turn bare words into overrides of the command's positional keys; detect ``--cfg``."""
    overrides: list[str] = []
    bare: list[str] = []
    print_cfg = False
    for a in rest:
        if a == "--cfg":
            print_cfg = True
        elif "=" in a or a.startswith(("+", "~")):
            overrides.append(a)
        elif a.startswith("-"):
            raise GencrystalError(f"unknown option {a!r}; commands take key=value overrides")
        else:
            bare.append(a)
    if len(bare) > len(cmd.positional):
        raise GencrystalError(
            f"unexpected argument {bare[len(cmd.positional)]!r} for `gencrystal {' '.join(cmd.words)}`"
        )
    overrides = [f"{k}={v}" for k, v in zip(cmd.positional, bare)] + overrides
    return overrides, print_cfg


def compose(config: str, overrides: Sequence[str] = ()):
    """Compose ``conf/<config>.yaml`` with Hydra overrides (also used by tests and scripts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=config, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GencrystalError(f"bad configuration override: {first}") from exc


def _load(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    try:
        cmd, rest = _match(argv)
        if any(a in ("-h", "--help") for a in rest):
            print(f"gencrystal {' '.join(cmd.words)}: {cmd.help}")
            print(f"config: conf/{cmd.config}.yaml (override with key=value); composed defaults:\n")
            rest = [a for a in rest if a not in ("-h", "--help")]
            overrides, _ = _split_args(cmd, rest)
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(compose(cmd.config, overrides)))
            return 0
        overrides, print_cfg = _split_args(cmd, rest)
        cfg = compose(cmd.config, overrides)
        if print_cfg:
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(cfg, resolve=False))
            return 0
        result = _load(cmd.target)(cfg)
        return int(result) if isinstance(result, int) else 0
    except GencrystalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gencrystal train --help | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
