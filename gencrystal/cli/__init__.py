"""The one entry point: ``gencrystal <command> [<sub-command>] [positional] key=value ...``.

Every command is a Hydra app over the top-level ``conf/`` directory: the config named
in its :class:`Command` entry is composed with the ``key=value`` overrides of the
command line (the usual Hydra grammar: ``data=mp20``, ``+foo=1``, ``~bar``), then
handed to the command's function in this package (``gencrystal.cli.<area>``), a thin layer
that checks arguments, calls the library and prints. Composition itself lives in
:mod:`gencrystal.config`; no library module imports this package.

The Hydra compose API is used rather than ``@hydra.main`` so that Lightning's DDP
launcher, torchrun and SLURM can re-execute the same command line on every rank
without Hydra's run-directory arguments being appended (the clash MatterGen users hit).

Commands are registered in :data:`COMMANDS` only once they work.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from gencrystal.config import compose, conf_dir  # noqa: F401  (re-exported for callers of the CLI)
from gencrystal.errors import GencrystalError


@dataclass(frozen=True)
class Command:
    """One sub-command: its words, its Hydra config, its runner and one line of help."""

    words: tuple[str, ...]
    config: str
    target: str  # "module:function" taking the composed DictConfig
    help: str
    positional: tuple[str, ...] = field(default_factory=tuple)  # config keys filled by bare words
    # `key=NAME` choosing from a config group mounted at `key` (`search/method@method`)
    groups: dict[str, str] = field(default_factory=dict)


COMMANDS: list[Command] = [
    Command(
        ("data", "info"),
        "data_info",
        "gencrystal.cli.data:info",
        "Load a dataset, print counts and statistics, write a histogram plot.",
    ),
    Command(
        ("data", "split"),
        "data_split",
        "gencrystal.cli.data:split",
        "Re-split a dataset with every composition (by=composition) or duplicate group (by=structure) in one split.",
    ),
    Command(
        ("data", "download"),
        "data_download",
        "gencrystal.cli.data:download",
        "Download the standard CDVAE splits (mp20, perov5, carbon24, mpts52).",
        positional=("dataset",),
    ),
    Command(
        ("relax",),
        "relax",
        "gencrystal.cli.relax:run",
        "Relax structures with an ML potential at a pressure (H = E + PV); rank, dedupe, write extxyz/summary.",
    ),
    Command(
        ("evaluate", "csp"),
        "evaluate_csp",
        "gencrystal.cli.metrics:evaluate_csp",
        "CSP match rate and RMSE of predictions against references (1- or k-sample; metrics.json, CSV, plots).",
    ),
    Command(
        ("evaluate", "pipeline"),
        "evaluate_pipeline",
        "gencrystal.cli.metrics:evaluate_pipeline",
        "Stage table: raw samples -> MLP pre-relaxation -> DFT, each scored (match rate, RMSE, cRMSE, METRe; resumable).",
    ),
    Command(
        ("evaluate", "dng"),
        "evaluate_dng",
        "gencrystal.cli.metrics:evaluate_dng",
        "Generation metrics: validity, COV-R/P, Wasserstein, unique/novel, hull stability, S.U.N.",
    ),
    Command(
        ("train",),
        "train",
        "gencrystal.cli.train:run",
        "Train the conditional crystal diffusion model (Lightning; experiment=NAME, trainer=cpu|gpu|ddp, resume=true).",
    ),
    Command(
        ("db", "build"),
        "db_build",
        "gencrystal.cli.db:build",
        "Relax a dataset/structures at several pressures into the ASE database (resumable).",
    ),
    Command(
        ("db", "import"),
        "db_import",
        "gencrystal.cli.db:import_",
        "Import labelled structures (VASP runs, CALYPSO results, Cond-CDVAE tables, pymatgen entries, "
        "extxyz/CIF, ASE db) with provenance (resumable).",
        positional=("import_source", "source"),
    ),
    Command(
        ("db", "export"),
        "db_export",
        "gencrystal.cli.db:export",
        "Write train/val/test splits of the database grouped by composition (.db + CSV).",
    ),
    Command(
        ("db", "stats"),
        "db_stats",
        "gencrystal.cli.db:stats",
        "Print database counts per pressure/element; plot volume per atom vs pressure.",
    ),
    Command(
        ("search",),
        "search",
        "gencrystal.cli.search:run",
        "Search low-enthalpy structures at a pressure: method=random|pso|generative (resumable; ranking, plot).",
        groups={"method": "search/method@method"},
    ),
    Command(
        ("sample",),
        "sample",
        "gencrystal.cli.sampling:run",
        "Sample structures for a composition at a pressure (GPa) from a checkpoint; Z enumeration, input=FILE.",
    ),
    Command(
        ("validate",),
        "validate",
        "gencrystal.cli.validate:run",
        "DFT (GPAW; VASP inputs) re-relaxation of the top-k MLP structures at the same pressure; ranking agreement.",
    ),
    Command(
        ("relax", "eos"),
        "relax_eos",
        "gencrystal.cli.relax:eos",
        "Trust check: MLP vs DFT volumes and enthalpy differences of a structure over a pressure list (table + plot).",
    ),
    Command(
        ("demo",),
        "demo",
        "gencrystal.cli.demo:run",
        "The demo: sample Li16 and SiO2 at 50 GPa, relax with known phases, rank; knobs in conf/demo.yaml.",
    ),
    Command(
        ("learn",),
        "learn",
        "gencrystal.cli.learn:run",
        "Active learning from DFT: committee-uncertain frames -> GPAW labels -> fine-tuned CHGNet committee (resumable).",
    ),
]


def _usage() -> str:
    width = max(len(" ".join(c.words)) for c in COMMANDS) if COMMANDS else 10
    lines = [
        "usage: gencrystal <command> [key=value ...]",
        "",
        "Machine-learning crystal structure prediction under pressure (units: Å, eV, GPa).",
        "Every command is a Hydra app over conf/: override any entry with key=value.",
        "`gencrystal <command> --cfg` prints the composed config and exits.",
        "Every command takes threads=N: torch/BLAS threads (default: the cores this process may use).",
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
        raise GencrystalError(f"unknown command {' '.join(words[:2]) or argv[0]!r}; run `gencrystal --help` for the list")
    return best, list(argv[len(best.words) :])


def _split_args(cmd: Command, rest: list[str]) -> tuple[list[str], bool]:
    """Turn bare words into overrides of the command's positional keys and ``key=NAME`` into a
    choice from the group mounted at ``key``; detect ``--cfg``."""
    overrides: list[str] = []
    bare: list[str] = []
    print_cfg = False
    for a in rest:
        if a == "--cfg":
            print_cfg = True
        elif "=" in a and a.split("=", 1)[0] in cmd.groups:
            key, value = a.split("=", 1)
            overrides.append(f"{cmd.groups[key]}={value}")
        elif "=" in a or a.startswith(("+", "~")):
            overrides.append(a)
        elif a.startswith("-"):
            raise GencrystalError(f"unknown option {a!r}; commands take key=value overrides")
        else:
            bare.append(a)
    if len(bare) > len(cmd.positional):
        raise GencrystalError(f"unexpected argument {bare[len(cmd.positional)]!r} for `gencrystal {' '.join(cmd.words)}`")
    overrides = [f"{k}={v}" for k, v in zip(cmd.positional, bare)] + overrides
    return overrides, print_cfg


def _load(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _pop_threads(overrides: list[str]) -> tuple[list[str], str | None]:
    """Take ``threads=N`` out of the overrides: a CLI option of every command, not a config key."""
    rest, threads = [], None
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key == "threads":
            threads = value
        else:
            rest.append(o)
    return rest, threads


def _db_paths(cfg: Any) -> list[str]:
    """Database locations named in a composed config (for an error that carries no path)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and (node.endswith(".db") or node.startswith("postgres")):
            found.append(node)

    if cfg is not None:
        from omegaconf import OmegaConf

        try:
            walk(OmegaConf.to_container(cfg, resolve=True))
        except Exception:
            pass
    return sorted(set(found))


def _out_of(cfg: Any) -> Any:
    """The command's ``out=`` folder, or None when it has none (or it is not resolvable yet)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if "out" not in cfg or OmegaConf.is_missing(cfg, "out"):
        return None
    try:
        return cfg.out
    except OmegaConfBaseException:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code.

    Every error reaches the user as one ``error: ...`` line and exit code 2: bad input
    (:class:`GencrystalError`) and, in this one handler, operating-system errors (an
    ``out=`` that is a file, an unwritable folder, a full disk, a missing permission) and a
    database locked by another writer.
    """
    import sqlite3

    from gencrystal.errors import system_error_message

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    cfg = None
    try:
        cmd, rest = _match(argv)
        if any(a in ("-h", "--help") for a in rest):
            print(f"gencrystal {' '.join(cmd.words)}: {cmd.help}")
            print(f"config: conf/{cmd.config}.yaml (override with key=value); composed defaults:\n")
            rest = [a for a in rest if a not in ("-h", "--help")]
            overrides, _ = _split_args(cmd, rest)
            overrides, _ = _pop_threads(overrides)
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(compose(cmd.config, overrides)))
            return 0
        overrides, print_cfg = _split_args(cmd, rest)
        overrides, threads = _pop_threads(overrides)
        cfg = compose(cmd.config, overrides)
        if print_cfg:
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(cfg, resolve=False))
            return 0
        from gencrystal.io import check_out_folder
        from gencrystal.limits import check_config
        from gencrystal.runtime import set_threads

        check_config(cfg)  # absurd pressures, cutoffs, counts, budgets: refused before any work
        check_out_folder(_out_of(cfg))
        set_threads(None if threads in (None, "", "null", "None") else threads)
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
    except (OSError, sqlite3.Error) as exc:
        print(f"error: {system_error_message(exc, _db_paths(cfg))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
