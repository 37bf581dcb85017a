"""Sampling crystal structures conditioned on composition and pressure (GPa).

Public API::

    from gencrystal.sampling import Generator
    gen = Generator("model.ckpt", device="cpu", sampler="fast", batch_size=64)
    frames = gen.sample("SiO2", pressure=50, n=16, seed=0, formula_units="1-4")

``gencrystal sample`` (see ``docs/sampling.md``) wraps the same code.
"""

from gencrystal.sampling.generator import Generator, PressureRangeWarning, SampleRun, SamplingWarning
from gencrystal.sampling.requests import SampleRequest, expand_request, read_request_table

__all__ = [
    "Generator",
    "PressureRangeWarning",
    "SampleRequest",
    "SampleRun",
    "SamplingWarning",
    "expand_request",
    "read_request_table",
]
