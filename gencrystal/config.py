"""Configuration: the ``conf/`` directory, Hydra composition and ``_target_`` instantiation.

This is the library side of the command line: :mod:`gencrystal.cli` composes a command's
config with these functions, and library code, tests and scripts use them to build the
same objects a command builds (``compose("train", ["model=tiny"])``). No module here
imports :mod:`gencrystal.cli`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from gencrystal.errors import GencrystalError


def conf_dir() -> Path:
    """The Hydra config directory: ``$GENCRYSTAL_CONF`` or the repository's ``conf/``."""
    env = os.environ.get("GENCRYSTAL_CONF")
    if env:
        return Path(env).resolve()
    return (Path(__file__).resolve().parent.parent / "conf").resolve()


def compose(config: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<config>.yaml`` with Hydra overrides (``data=mp20``, ``+foo=1``, ``~bar``).

    A bad override raises :class:`GencrystalError` with Hydra's first line."""
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


def instantiate(node: Any, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets a GencrystalError raised by the target through
    as itself (Hydra wraps it) and turns other failures into one line naming ``what``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, GencrystalError):
            cause = cause.__cause__
        if isinstance(cause, GencrystalError):
            raise cause from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GencrystalError(f"bad {what} configuration: {first}") from exc
    except GencrystalError:
        raise
    except Exception as exc:
        raise GencrystalError(f"bad {what} configuration: {exc}") from exc
