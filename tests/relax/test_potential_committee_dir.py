"""A committee directory written by `gencrystal learn` is a potential by explicit config, not by sniffing."""

import pytest

from gencrystal.errors import GencrystalError
from gencrystal.potentials import build_potential, calculator_potential, load_potential


def test_directory_loads_as_committee(tmp_path, monkeypatch):
    calls = []

    def fake_loader(path, device="auto", **_):
        calls.append((str(path), device))
        return calculator_potential(lambda: None, "committee-potential")

    import gencrystal.potentials.committee as committee

    monkeypatch.setattr(committee, "load_committee_potential", fake_loader)
    config = {"_target_": "gencrystal.potentials.committee.load_committee_potential", "path": str(tmp_path),
              "device": "cpu"}
    pot = build_potential(config)
    assert pot.level_of_theory == "committee-potential" and pot.spec == config
    assert build_potential(dict(config)) is pot  # once per process
    assert calls == [(str(tmp_path), "cpu")]
    # a bare directory is no longer guessed to be a committee: the error names the explicit config
    for args in ([str(tmp_path)], ["chgnet", str(tmp_path)]):
        with pytest.raises(GencrystalError, match="potential=committee potential.path="):
            load_potential(*args, device="cpu")
    assert calls == [(str(tmp_path), "cpu")]
