"""Static checks of the install sets (setup.py extras, constraints*.txt, Dockerfile.dataflow, Makefile).

Nothing is installed or downloaded here. `.ci/curate_light.sh` proves the `[curate]` claim for real
(fresh virtualenv, no TensorFlow, align-curate on the demo sample); `.ci/trainer_tf220.sh` runs the
trainer on TF 2.20 with constraints-tpu.txt's pins.
"""
import ast
import os
import re
import runpy
import sys
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWN_PACKAGES = {"pipeline", "dedup", "schemas", "trainer"}
CURATION_PACKAGES = ("pipeline", "dedup", "schemas")

# Modules of the curation packages that are TensorFlow code by design: never imported (at module
# level) by what align-curate / align-dedup load; checked below.
TF_SIDE_MODULES = {
    "schemas.example_schema",  # tf.train.Example parsing for the trainer (writers use example_wire)
    "dedup.embedder_model",  # the learned copy-detection embedder's Keras model
}
# Function-level (lazy) imports of packages outside [curate] in the curation packages: each one is
# reached only with an option that needs TensorFlow. A new one must be added here on purpose.
LAZY_HEAVY_IMPORTS = {
    ("pipeline/unsafe.py", "tensorflow"),  # --unsafe_model_path: SavedModel scorer
    ("pipeline/vocab.py", "tensorflow_text"),  # BasicTokenizer for non-Latin texts (see report)
    ("dedup/embedders.py", "tensorflow"),  # --dedup_embedder SAVEDMODEL_DIR
    ("dedup/embedders.py", "tensorflow_text"),
    ("dedup/train_embedder.py", "tensorflow"),  # align-dedup train-embedder
    ("dedup/train_embedder.py", "keras"),
    ("schemas/input_files.py", "tensorflow"),  # tf.io.gfile for schemes Beam has no file system for
}
HEAVY = {"tensorflow", "tensorflow_text", "keras", "keras_hub", "tf_keras"}

# import name -> distribution (the project's direct dependencies).
DIST_OF_IMPORT = {
    "apache_beam": "apache-beam",
    "faiss": "faiss-cpu",
    "imagehash": "imagehash",
    "PIL": "pillow",
    "scipy": "scipy",
    "pyarrow": "pyarrow",
    "numpy": "numpy",
    "google.protobuf": "protobuf",
    "google_crc32c": "google-crc32c",
    "threadpoolctl": "threadpoolctl",
    "h5py": "h5py",
    "tokenizers": "tokenizers",
    "sklearn": "scikit-learn",
    "tqdm": "tqdm",
    "tensorflow": "tensorflow",
    "tensorflow_text": "tensorflow-text",
    "keras": "keras",
    "keras_hub": "keras-hub",
}


def _setup_kwargs() -> dict:
    import setuptools

    captured = {}
    real, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        os.chdir(REPO)  # find_packages() looks in the current directory
        runpy.run_path(os.path.join(REPO, "setup.py"), run_name="__not_main__")
    finally:
        setuptools.setup = real
        os.chdir(cwd)
    assert captured.get("packages"), "setup.py found no packages"
    return captured


SETUP = _setup_kwargs()
EXTRAS: Dict[str, List[str]] = SETUP["extras_require"]


def _pins(path: str) -> Dict[str, Version]:
    pins = {}
    with open(os.path.join(REPO, path)) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+!\-]+)", line)
            assert match, f"{path}: not an exact pin: {line!r}"
            name = canonicalize_name(match.group(1))
            assert name not in pins, f"{path}: {name} pinned twice"
            pins[name] = Version(match.group(2))
    return pins


CONSTRAINTS = _pins("constraints.txt")


def _reqs(extra: str) -> List[Requirement]:
    return [Requirement(r) for r in EXTRAS[extra]]


# --- setup.py vs constraints.txt ------------------------------------------------------------


def test_extras_exist_and_base_is_the_light_set():
    assert {"curate", "train", "eval", "all", "test"} <= set(EXTRAS)
    # Dataflow's --setup_file installs the sdist without extras: the base must be [curate].
    assert sorted(SETUP["install_requires"]) == sorted(EXTRAS["curate"])
    every = {canonicalize_name(r.name) for extra in ("curate", "train", "eval") for r in _reqs(extra)}
    assert every <= {canonicalize_name(r.name) for r in _reqs("all")}


@pytest.mark.parametrize("extra", ["curate", "train", "eval", "all", "test"])
def test_ranges_are_compatible_ranges_that_contain_the_pins(extra):
    for req in _reqs(extra):
        ops = {spec.operator for spec in req.specifier}
        assert "==" not in ops and "===" not in ops, f"[{extra}] {req}: a range, not a pin (pins: constraints.txt)"
        assert ops & {">=", ">", "~="}, f"[{extra}] {req}: no lower bound"
        assert ops & {"<", "<=", "~="}, f"[{extra}] {req}: no upper bound"
        name = canonicalize_name(req.name)
        assert name in CONSTRAINTS, f"[{extra}] {req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(CONSTRAINTS[name], prereleases=True), (
            f"[{extra}] {req} does not contain constraints.txt's {name}=={CONSTRAINTS[name]}")


def test_curate_set_has_no_tensorflow():
    names = {canonicalize_name(r.name) for r in _reqs("curate")}
    assert not names & {"tensorflow", "tensorflow-text", "keras", "keras-hub", "tensorflow-cpu",
                        "tensorflow-tpu", "tf-keras"}, names
    beam = [r for r in _reqs("curate") if canonicalize_name(r.name) == "apache-beam"]
    assert beam and "gcp" in beam[0].extras  # GCS IO and the DataflowRunner


def test_python_requires_admits_the_wheels_python_versions():
    spec = SpecifierSet(SETUP["python_requires"])
    # tensorflow 2.20/2.21, tensorflow-text 2.20.1/2.21.1, apache-beam 2.77, faiss-cpu 1.15 publish
    # cp311 and cp312 wheels (checked with `pip install --dry-run` on 3.12.1); 3.10 lacks keras 3.15.
    for ok in ("3.11.0", "3.11.7", "3.12.0", "3.12.1"):
        assert spec.contains(ok), (SETUP["python_requires"], ok)
    for refused in ("3.10.13", "3.13.0"):
        assert not spec.contains(refused), (SETUP["python_requires"], refused)
    assert spec.contains(".".join(map(str, sys.version_info[:3])))  # the interpreter running this


def test_makefile_installs_all_and_test_with_constraints():
    with open(os.path.join(REPO, "Makefile")) as f:
        makefile = f.read()
    install = [line for line in makefile.splitlines() if "pip install" in line and "constraints.txt" in line]
    assert any("'.[all,test]'" in line or '".[all,test]"' in line for line in install), install


# --- what the curation packages import ------------------------------------------------------


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _curation_files() -> Iterator[str]:
    for package in CURATION_PACKAGES:
        for root, _, files in os.walk(os.path.join(REPO, package)):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.join(root, name)


def _imports(path: str) -> Iterator[Tuple[str, bool]]:
    """(imported module, at module level?) for every import statement of a file (relative imports
    resolved against its package)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = _module_name(path)
    if not path.endswith("__init__.py"):
        package = package.rsplit(".", 1)[0]

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, top
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module
                yield module, top
                for alias in child.names:  # `from pkg import module`
                    yield f"{module}.{alias.name}", top
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, False)
            else:  # module level includes if/try/with blocks and class bodies
                yield from visit(child, top)

    yield from visit(tree, True)


def _third_party_dist(module: str):
    """Distribution of a third-party module, '' for stdlib / own packages."""
    top = module.split(".")[0]
    if top in OWN_PACKAGES or top in sys.stdlib_module_names or top == "__future__":
        return ""
    for prefix in (".".join(module.split(".")[:2]), top):
        if prefix in DIST_OF_IMPORT:
            return DIST_OF_IMPORT[prefix]
    return f"<unknown: {module}>"


def test_module_level_imports_of_curation_packages_are_in_curate():
    curate = {canonicalize_name(r.name) for r in _reqs("curate")}
    bad = []
    for path in _curation_files():
        if _module_name(path) in TF_SIDE_MODULES:
            continue
        for module, top in _imports(path):
            dist = _third_party_dist(module)
            if top and dist and canonicalize_name(dist) not in curate:
                bad.append(f"{os.path.relpath(path, REPO)}: import {module} ({dist})")
    assert not bad, "module-level imports outside setup.py's [curate] set:\n" + "\n".join(sorted(set(bad)))


def test_lazy_imports_outside_curate_are_the_known_ones():
    curate = {canonicalize_name(r.name) for r in _reqs("curate")}
    found = set()
    for path in _curation_files():
        if _module_name(path) in TF_SIDE_MODULES:
            continue
        for module, top in _imports(path):
            dist = _third_party_dist(module)
            if not top and dist and canonicalize_name(dist) not in curate:
                found.add((os.path.relpath(path, REPO), module.split(".")[0]))
    new = found - LAZY_HEAVY_IMPORTS
    assert not new, (f"new lazy imports of packages outside [curate] in the curation packages: {sorted(new)}; "
                     "if the option that needs them is meant to need TensorFlow on the workers, list "
                     "them in LAZY_HEAVY_IMPORTS (and docs/PIPELINE.md), else add the package to [curate]")


def test_module_level_imports_of_the_trainer_are_in_train_or_eval():
    """trainer/ needs [train]; trainer/evaluation and trainer/search may also use [eval]."""
    allowed = {extra: {canonicalize_name(r.name) for r in _reqs(extra)} for extra in ("train", "eval")}
    bad = []
    for root, _, files in os.walk(os.path.join(REPO, "trainer")):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, REPO)
            extra = "eval" if rel.startswith(("trainer/evaluation/", "trainer/search/")) else "train"
            for module, top in _imports(path):
                dist = _third_party_dist(module)
                if top and dist and canonicalize_name(dist) not in allowed[extra]:
                    bad.append(f"{rel}: import {module} ({dist}) not in [{extra}]")
    assert not bad, "\n".join(sorted(set(bad)))


def _closure(roots) -> Set[str]:
    """Own modules loaded at import time (module-level imports only) from `roots`."""
    files = {_module_name(p): p for p in _curation_files()}
    for package in OWN_PACKAGES - set(CURATION_PACKAGES):
        for root, _, names in os.walk(os.path.join(REPO, package)):
            for name in names:
                if name.endswith(".py"):
                    files[_module_name(os.path.join(root, name))] = os.path.join(root, name)
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module not in files:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages' __init__
        todo += [m for m, top in _imports(files[module]) if top and m.split(".")[0] in OWN_PACKAGES]
    return seen


def test_align_curate_and_align_dedup_load_no_tensorflow_module():
    loaded = _closure(["pipeline.curate", "dedup.cli", "dedup.beam_stage", "pipeline.vocab"])
    assert "pipeline.curate" in loaded and "schemas.example_wire" in loaded  # the TF-free writer
    assert not loaded & TF_SIDE_MODULES, loaded & TF_SIDE_MODULES
    assert not {m for m in loaded if m.startswith("trainer")}, sorted(m for m in loaded if m.startswith("trainer"))
    for module in loaded:
        path = os.path.join(REPO, *module.split(".")) + ".py"
        if not os.path.exists(path):
            path = os.path.join(REPO, *module.split("."), "__init__.py")
        heavy = {m for m, top in _imports(path) if top and m.split(".")[0] in HEAVY}
        assert not heavy, f"{module} imports {heavy} at module level"


# --- other install paths ----------------------------------------------------------------------


def test_tpu_constraints_pin_the_tf_2_20_line_and_fit_the_ranges():
    tpu = _pins("constraints-tpu.txt")
    assert tpu[canonicalize_name("tensorflow-tpu")] == Version("2.20.0")
    assert "tensorflow" not in tpu  # would install next to tensorflow-tpu (same `tensorflow` package)
    # PyPI's newest libtpu (0.0.52) makes tensorflow-tpu 2.20 abort at import (constraints-tpu.txt).
    assert tpu["libtpu"] == Version("0.0.14")
    text = tpu[canonicalize_name("tensorflow-text")]
    assert (text.major, text.minor) == (2, 20)  # tensorflow-text must match TF's minor version
    for req in _reqs("all") + _reqs("test"):
        name = canonicalize_name(req.name)
        pinned = tpu["tensorflow-tpu"] if name == "tensorflow" else tpu.get(name)
        assert pinned is not None, f"constraints-tpu.txt lacks {name} (it is a complete lock)"
        assert req.specifier.contains(pinned), f"constraints-tpu.txt {name}=={pinned} outside {req}"
    # Everything else as in constraints.txt (one tested tree).
    same = {n: v for n, v in CONSTRAINTS.items() if n not in ("tensorflow", "tensorflow-text")}
    assert {n: tpu.get(n) for n in same} == same


def test_gpu_constraints_are_tf_2_21_with_cuda_wheels():
    gpu = _pins("constraints-gpu.txt")
    assert gpu["tensorflow"] == CONSTRAINTS["tensorflow"] == Version("2.21.0")
    assert any(name.startswith("nvidia-") for name in gpu), "the [and-cuda] wheels are not pinned"
    for name, version in CONSTRAINTS.items():
        assert gpu.get(name) == version, f"constraints-gpu.txt {name}: {gpu.get(name)} != {version}"
    with open(os.path.join(REPO, "constraints-gpu.txt")) as f:
        assert "tensorflow[and-cuda]==2.21.0" in f.read()  # the documented install command


def test_dataflow_dockerfile_matches_the_pins():
    with open(os.path.join(REPO, "Dockerfile.dataflow")) as f:
        dockerfile = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert len(froms) == 1, froms
    match = re.fullmatch(r"apache/beam_python(\d+)\.(\d+)_sdk:(\S+)", froms[0])
    assert match, froms[0]
    python, beam = f"{match.group(1)}.{match.group(2)}", Version(match.group(3))
    assert beam == CONSTRAINTS["apache-beam"], (beam, CONSTRAINTS["apache-beam"])
    assert SpecifierSet(SETUP["python_requires"]).contains(f"{python}.0")
    assert python == "3.11"  # the Python `make test` runs on; the launcher must use the same minor
    assert not re.search(r"^ENTRYPOINT", dockerfile, flags=re.M)  # keep Beam's /opt/apache/beam/boot
    copied = set(re.findall(r"^COPY\s+(.+?)\s+\S+\s*$", dockerfile, flags=re.M))
    copied = {part for line in copied for part in line.split()}
    packages = {p.split(".")[0] for p in SETUP["packages"]}
    assert {"setup.py", "constraints.txt"} | packages <= copied, copied
    default_extras = re.search(r"^ARG EXTRAS=(\S+)", dockerfile, flags=re.M).group(1).split(",")
    assert default_extras == ["curate"]
    install = [l for l in dockerfile.splitlines() if "pip install" in l]
    assert len(install) == 1 and "-c constraints.txt" in install[0] and "[${EXTRAS}]" in install[0], install


def test_ci_runs_the_install_checks():
    with open(os.path.join(REPO, ".ci", "run")) as f:
        ci = f.read()
    assert "make test" in ci and ".ci/curate_light.sh" in ci and ".ci/trainer_tf220.sh" in ci
    # chromium first, so that the search page's browser test runs inside `make test`
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert commands.index("bash .ci/install_chromium.sh") < commands.index("make test"), commands
    with open(os.path.join(REPO, ".ci", "curate_light.sh")) as f:
        light = f.read()
    assert "-c constraints.txt" in light and "[curate]" in light and "import tensorflow" in light
