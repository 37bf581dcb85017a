"""The element vocabulary: the atomic numbers Z = 1..:data:`MAX_Z` (H..Fm) that datasets,
the composition condition and the atom-type diffusion of the model know.

Z maps to index Z − 1 in composition vectors and to token Z − 1 of the atom-type
denoiser (whose absorbing mask token is :data:`MAX_Z`). Potentials declare their own,
usually smaller, coverage (``Potential.elements``).
"""

from __future__ import annotations

from ase.data import chemical_symbols

#: Largest atomic number in the vocabulary (Fm).
MAX_Z = 100
#: Symbols of Z = 1..MAX_Z, index Z − 1.
SYMBOLS: tuple[str, ...] = tuple(chemical_symbols[1:MAX_Z + 1])
