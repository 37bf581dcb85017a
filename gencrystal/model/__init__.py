"""The materials model: lattice prior, conditioning, denoiser, Lightning module, training.

* :mod:`gencrystal.model.lattice_prior` — ``μ(n, P) = (n·c(P))^(1/3)``, ``v·n^(2/3)``;
  ``c(P)`` constant / log-linear / Murnaghan fitted on pressure-binned volumes.
* :mod:`gencrystal.model.conditioning` — composition and scalar (pressure, ...) conditions
  with learned null embeddings for classifier-free guidance.
* :mod:`gencrystal.model.denoiser` — the :class:`Denoiser` interface and :class:`CSPNet`.
* :mod:`gencrystal.model.module` — :class:`CrystalDiffusionModule` (training, EMA,
  ``load_checkpoint``, ``sample``).
* :mod:`gencrystal.model.train` — ``train(cfg) -> Path`` and the ``gencrystal train`` command.

Heavy imports (Lightning) stay in the submodules.
"""
