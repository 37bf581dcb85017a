"""A committee directory written by `gencrystal learn` is a first-class potential."""

from gencrystal.relax import potentials


def test_directory_loads_as_committee(tmp_path, monkeypatch):
    calls = []

    def fake_loader(path, device="auto", **_):
        calls.append((str(path), device))
        return "committee-potential"

    import gencrystal.learn.committee as committee

    monkeypatch.setattr(committee, "load_committee_potential", fake_loader)
    assert potentials.load_potential(str(tmp_path), device="cpu") == "committee-potential"
    assert potentials.load_potential("chgnet", path=str(tmp_path), device="cpu") == "committee-potential"
    assert calls == [(str(tmp_path), "cpu"), (str(tmp_path), "cpu")]
