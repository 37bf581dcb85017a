#!/usr/bin/env python
"""The GPU run kit: what a GPU machine without a package registry needs to run gencrystal.

A GPU image with PyTorch, Lightning and torch-geometric preinstalled (CPython 3.12, x86-64;
``scripts/gpu_kit/preinstalled.txt``) lacks pymatgen, Hydra, ASE, spglib, SMACT, PyXtal,
CHGNet, Dask and their needs. ``build`` downloads their wheels here (``pip download
--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux...``,
``scripts/gpu_kit/wheels.txt``) into the ignored folder ``.gpu-kit/wheels``, builds the few
pure-Python sdist-only ones into wheels, and copies the MP-20 splits the GPU job reads
(val as training data under the offline protocol, test for scoring; feather, 6.8 MB) into
``.gpu-kit/data/mp_20``. The kit and the repository together must stay under 60 MiB (the
working tree sent to the machine is limited to 64 MiB).

    python scripts/gpu_kit.py build [--kit .gpu-kit] [--data-root ../shared/data]   # = make gpu-kit
    python scripts/gpu_kit.py check [--kit .gpu-kit]    # closure, imports, size of a built kit
    python scripts/gpu_kit.py imports                   # every gencrystal module imports (on the GPU machine)

``check`` without a built kit checks what can be checked against this machine's venv:
the wheel list is closed under the installed distributions' requirements, and every
module of gencrystal imports with only the listed + preinstalled distributions importable.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KIT_DIR = REPO / ".gpu-kit"
WHEELS_TXT = REPO / "scripts" / "gpu_kit" / "wheels.txt"
PREINSTALLED_TXT = REPO / "scripts" / "gpu_kit" / "preinstalled.txt"
LIMIT_MIB = 60.0
PYTHON_VERSION = "3.12"
# pip matches manylinux_2_N exactly: list every N the wheels of the list use
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64"]
# the marker environment of the GPU image (PEP 508), for the requirements of the kit's wheels
TARGET_ENV = {"python_version": PYTHON_VERSION, "python_full_version": "3.12.3", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64", "os_name": "posix", "implementation_version": "3.12.3", "extra": ""}
# top-level imports of gencrystal that may be missing on the GPU machine: each is imported lazily,
# inside the one function that needs it, and the GPU job never calls that function
ABSENT = {
    "gpaw": "DFT backend, compiled against the system's libxc/FFTW/BLAS (scripts/install_gpaw.sh)",
    "wandb": "W&B logger; the GPU job logs to CSV (logger=csv)",
    "sevenn": "SevenNet potential; the GPU job relaxes with CHGNet",
    "matminer": "DNG fingerprints (gencrystal.metrics.dng); the GPU job scores CSP",
}
# distributions that kit wheels require but the kit leaves out: each is imported only inside
# functions the GPU job never calls (``gpu_run.sh`` installs with ``--no-deps``); the isolated-import
# check below runs without them, so a module-level import of one fails ``check``
NOT_CARRIED = {
    "plotly": "pymatgen's interactive plots (phase diagrams, XRD); imported inside plotting functions only, "
              "and it is 9.7 MB of the 64 MiB the machine accepts",
}
# the MP-20 splits the GPU job reads (offline protocol: val is the training data)
DATA_FILES = [("mp_20", "val.feather"), ("mp_20", "test.feather")]


def canon(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = WHEELS_TXT) -> list[dict]:
    """``[{"name", "version", "sdist"}]`` from the wheel list (``name==version [# sdist]`` lines)."""
    out = []
    for raw in path.read_text().splitlines():
        line, _, comment = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if not m:
            raise ValueError(f"{path.name}: cannot read {raw!r} (expected name==version)")
        out.append({"name": canon(m.group(1)), "version": m.group(2), "sdist": comment.strip() == "sdist"})
    return out


def read_preinstalled(path: Path = PREINSTALLED_TXT) -> dict[str, str | None]:
    """Preinstalled distribution -> version (None where the list gives none)."""
    out: dict[str, str | None] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, _, ver = line.partition("==")
            out[canon(name)] = ver or None
    return out


# ---------------------------------------------------------------------------- build
def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-6:])
        raise SystemExit(f"error: {' '.join(cmd[2:5])} ... failed (exit {res.returncode}):\n{tail}")


def download_wheels(dest: Path, pins: list[dict]) -> None:
    """Binary wheels for the GPU image into ``dest``; sdist-only pure packages built into wheels."""
    dest.mkdir(parents=True, exist_ok=True)
    have = {canon(p.name.split("-")[0]) + "==" + p.name.split("-")[1] for p in dest.glob("*.whl")}
    binary = [p for p in pins if not p["sdist"] and f"{p['name']}=={p['version']}" not in have]
    if binary:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            fh.write("\n".join(f"{p['name']}=={p['version']}" for p in binary) + "\n")
            req = fh.name
        try:
            plat = [a for p in PLATFORMS for a in ("--platform", p)]
            _pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                 "--implementation", "cp", *plat, "-d", str(dest), "-r", req)
        finally:
            os.unlink(req)
    for p in pins:
        if p["sdist"] and f"{p['name']}=={p['version']}" not in have:
            with tempfile.TemporaryDirectory() as tmp:
                _pip("wheel", "-q", "--no-deps", "--no-binary", p["name"], "-w", tmp, f"{p['name']}=={p['version']}")
                for whl in Path(tmp).glob("*.whl"):
                    if not whl.name.endswith("-none-any.whl"):
                        raise SystemExit(f"error: {whl.name} built from sdist is not pure Python: it would not run on the GPU image")
                    shutil.move(str(whl), dest / whl.name)


def copy_data(kit: Path, data_root: Path) -> list[str]:
    """Copy the MP-20 splits of DATA_FILES into ``kit/data`` (the GPU job's ``GENCRYSTAL_DATA``)."""
    copied = []
    for folder, name in DATA_FILES:
        src = data_root / folder / name
        if not src.is_file():
            raise SystemExit(f"error: {src} not found (set --data-root or GENCRYSTAL_DATA to the benchmark data)")
        dst = kit / "data" / folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
        copied.append(f"{folder}/{name}")
    return copied


def travelling_bytes(repo: Path = REPO) -> int:
    """Bytes of the repository's working tree that travel with it (tracked + untracked, not ignored)."""
    res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True)
    total = 0
    for rel in res.stdout.decode().split("\0"):
        p = repo / rel
        if rel and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def kit_bytes(kit: Path) -> int:
    return sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())


def build(kit: Path, data_root: Path) -> dict:
    pins = read_pins()
    wheels = kit / "wheels"
    wanted = {(p["name"], p["version"]) for p in pins}
    for whl in wheels.glob("*.whl") if wheels.is_dir() else []:  # a wheel dropped from the list goes
        if (canon(whl.name.split("-")[0]), whl.name.split("-")[1]) not in wanted:
            whl.unlink()
    download_wheels(wheels, pins)
    shutil.rmtree(kit / "data" / "cache", ignore_errors=True)  # a parse cache made here would travel; it is rebuilt there
    data = copy_data(kit, data_root)
    manifest = {"python": PYTHON_VERSION, "platforms": PLATFORMS, "data": data,
                "wheels": {w.name: {"bytes": w.stat().st_size, "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
                           for w in sorted(wheels.glob("*.whl"))}}
    (kit / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# ---------------------------------------------------------------------------- checks
def wheel_metadata(whl: Path) -> tuple[str, str, list[str]]:
    """(name, version, Requires-Dist lines) read from a wheel's METADATA."""
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        msg = Parser().parsestr(z.read(meta).decode("utf-8", "replace"))
    return canon(msg["Name"]), msg["Version"], msg.get_all("Requires-Dist") or []


def _needed(req_lines: list[str]) -> list:
    """Requirements that apply on the GPU image (markers evaluated there, no extras)."""
    from packaging.requirements import Requirement

    out = []
    for line in req_lines:
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate(TARGET_ENV):
            out.append(r)
    return out


def closure_problems(provided: dict[str, str], requires: dict[str, list[str]], pre: dict[str, str | None]) -> list[str]:
    """Requirements of the kit's distributions met neither by the kit nor by the preinstalled ones.

    ``provided``: kit distribution -> version; ``requires``: kit distribution -> Requires-Dist lines."""
    from packaging.version import Version

    problems = []
    for dist, lines in sorted(requires.items()):
        for r in _needed(lines):
            name = canon(r.name)
            if name in NOT_CARRIED:
                continue
            if name in provided:
                if r.specifier and not r.specifier.contains(Version(provided[name]), prereleases=True):
                    problems.append(f"{dist} needs {r}, the kit has {name}=={provided[name]}")
            elif name in pre:
                ver = pre[name]
                if ver and r.specifier and not r.specifier.contains(Version(ver), prereleases=True):
                    problems.append(f"{dist} needs {r}, the GPU image has {name}=={ver}")
            else:
                problems.append(f"{dist} needs {r}: neither in the kit nor preinstalled")
    return problems


def kit_closure(kit: Path) -> list[str]:
    """Closure problems of a built kit (its wheels' own METADATA) plus pins without a wheel."""
    provided, requires = {}, {}
    for whl in sorted((kit / "wheels").glob("*.whl")):
        name, ver, reqs = wheel_metadata(whl)
        if name in provided:
            return [f"two wheels of {name} in {kit / 'wheels'}"]
        provided[name], requires[name] = ver, reqs
    missing = [f"{p['name']}=={p['version']} is listed but has no wheel in the kit" for p in read_pins()
               if provided.get(p["name"]) != p["version"]]
    return missing + closure_problems(provided, requires, read_preinstalled())


def venv_closure() -> list[str]:
    """Closure problems of the wheel list judged by this venv's metadata of the same distributions."""
    provided, requires, problems = {}, {}, []
    for p in read_pins():
        try:
            dist = md.distribution(p["name"])
        except md.PackageNotFoundError:
            problems.append(f"{p['name']} is in the wheel list but not installed here: its requirements are unchecked")
            continue
        provided[p["name"]] = p["version"]
        requires[p["name"]] = dist.requires or []
    return problems + closure_problems(provided, requires, read_preinstalled())


def top_level_imports(root: Path = REPO / "gencrystal") -> dict[str, set[str]]:
    """Top-level module -> gencrystal files importing it (anywhere in the file, lazy imports too)."""
    out: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                out.setdefault(n.split(".")[0], set()).add(str(path.relative_to(root.parent)))
    return out


def import_names_of(dists: set[str]) -> set[str]:
    """Top-level import names that this venv's copies of ``dists`` provide."""
    names = set()
    for mod, owners in md.packages_distributions().items():
        if any(canon(o) in dists for o in owners):
            names.add(mod)
    return names


def unresolved_imports() -> dict[str, list[str]]:
    """gencrystal's third-party imports that neither the kit nor the image provides (ABSENT excepted)."""
    dists = {p["name"] for p in read_pins()} | set(read_preinstalled())
    ok = import_names_of(dists) | set(sys.stdlib_module_names) | {"gencrystal"} | set(ABSENT)
    return {m: sorted(f) for m, f in top_level_imports().items() if m not in ok}


# Run in a fresh interpreter: every gencrystal module must import with only the stdlib, the kit's
# distributions and the image's preinstalled ones importable (this machine's copies stand in for them).
_ISOLATED_IMPORT = r"""
import importlib, importlib.abc, json, pkgutil, sys
allowed = set(json.loads(sys.argv[1]))
class Only(importlib.abc.MetaPathFinder):  # a module outside `allowed` looks absent (find_spec probes see None)
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if not (top in allowed or top in sys.stdlib_module_names or top.startswith("_")):
            return None
        for f in self.finders:
            spec = f.find_spec(name, path, target) if hasattr(f, "find_spec") else None
            if spec is not None:
                return spec
        return None
    def find_distributions(self, *args, **kwargs):  # package metadata stays readable
        for f in self.finders:
            if hasattr(f, "find_distributions"):
                yield from f.find_distributions(*args, **kwargs)
sys.meta_path[:] = [Only(list(sys.meta_path))]
import gencrystal
names = json.loads(sys.argv[2]) or [m.name for m in pkgutil.walk_packages(gencrystal.__path__, "gencrystal.")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""


def isolated_import_failures(modules: list[str] | None = None, pins: list[dict] | None = None) -> dict[str, str]:
    """Modules of gencrystal (all, or ``modules``) that fail to import in a fresh interpreter where only the
    stdlib, the kit's distributions (``pins``, default the wheel list) and the preinstalled ones exist."""
    dists = {p["name"] for p in (read_pins() if pins is None else pins)} | set(read_preinstalled())
    allowed = sorted(import_names_of(dists) | {"gencrystal"})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", _ISOLATED_IMPORT, json.dumps(allowed), json.dumps(modules or [])],
                         capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=600)
    if res.returncode != 0:
        return {"<interpreter>": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def all_module_imports() -> dict[str, str]:
    """Import every gencrystal module here (on the GPU machine: after the kit is installed)."""
    import importlib
    import pkgutil

    import gencrystal

    failed = {}
    for m in pkgutil.walk_packages(gencrystal.__path__, "gencrystal."):
        try:
            importlib.import_module(m.name)
        except Exception as exc:
            failed[m.name] = f"{type(exc).__name__}: {exc}"
    return failed


def check(kit: Path) -> int:
    problems: list[str] = []
    built = (kit / "wheels").is_dir()
    problems += kit_closure(kit) if built else venv_closure()
    problems += [f"gencrystal imports {m} ({', '.join(f)}): not in the kit, not preinstalled"
                 for m, f in unresolved_imports().items()]
    problems += [f"{m}: {e}" for m, e in isolated_import_failures().items()]
    size = None
    if built:
        size = (travelling_bytes() + kit_bytes(kit)) / 2**20
        if size > LIMIT_MIB:
            problems.append(f"repository + kit = {size:.1f} MiB > {LIMIT_MIB:g} MiB")
    for p in problems:
        print(f"problem: {p}")
    print(("kit " + str(kit) if built else "wheel list (no built kit: checked against this venv)")
          + (f"; repository + kit {size:.1f} MiB of {LIMIT_MIB:g}" if size is not None else "")
          + f"; {len(problems)} problem(s)")
    return 1 if problems else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["build", "check", "imports"])
    ap.add_argument("--kit", default=str(KIT_DIR), help="kit folder (default .gpu-kit, ignored by git)")
    ap.add_argument("--data-root", default=os.environ.get("GENCRYSTAL_DATA", str(REPO.parent / "shared" / "data")))
    a = ap.parse_args(argv)
    kit = Path(a.kit)
    if a.command == "imports":
        failed = all_module_imports()
        for m, e in failed.items():
            print(f"import failed: {m}: {e}")
        print(f"{len(failed)} gencrystal module(s) failed to import")
        return 1 if failed else 0
    if a.command == "build":
        man = build(kit, Path(a.data_root))
        mib = kit_bytes(kit) / 2**20
        print(f"built {kit}: {len(man['wheels'])} wheels + {', '.join(man['data'])}, {mib:.1f} MiB")
    return check(kit)


if __name__ == "__main__":
    raise SystemExit(main())
