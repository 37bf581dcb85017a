"""DFT tests need GPAW (installed by scripts/install_gpaw.sh); they skip without it."""

import pytest


@pytest.fixture(scope="session")
def gpaw_test_backend():
    """GPAW at test size (conf/dft/gpaw_test.yaml): PW 250 eV, 2 k-points/Å⁻¹, symmetry on."""
    pytest.importorskip("gpaw")
    from hydra.utils import instantiate

    from gencrystal.config import compose

    return instantiate(compose("validate", ["dft=gpaw_test"]).dft)
