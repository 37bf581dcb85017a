"""gencrystal: machine-learning crystal structure prediction, above all under pressure.

Data flows one way: dataset -> batch -> model (train) -> sampler -> structures ->
relax (MLP) -> validate (DFT) -> metrics/report, with the structure database (ASE db)
beside every stage. Units at every interface: Å, eV, GPa.
"""

__version__ = "0.1.0"
