"""Coverage-guided fuzzing of the readers with atheris (libFuzzer), beside the hypothesis fuzzers.

``tests/test_fuzz_readers.py`` mutates valid inputs along lines a person would get wrong (a cell, a
column, an encoding) and runs in CI. This script lets libFuzzer mutate raw bytes instead, guided by
which lines of ``bayes_blina`` each input reaches, for as long as one likes. The oracle is the
same: any input loads or raises the package's own error naming the file; for the package's own
format a loaded table has every non-blank row of its file. A crash is written by libFuzzer as
``crash-<sha1>`` in the working folder; copy it to ``tests/fuzz_corpus/<reader>/<file>--<what>``
(the tests replay that folder).

    pip install atheris            # wheels for CPython 3.12 (x86_64 Linux); not a dependency
    python scripts/fuzz_atheris.py dataset:observations.csv -max_total_time=600
    python scripts/fuzz_atheris.py adam:adlb.csv -runs=20000
    python scripts/fuzz_atheris.py nonmem -max_total_time=300
    python scripts/fuzz_atheris.py spec -max_total_time=300

Arguments after the target go to libFuzzer (``-help=1`` lists them). The seed input is the
target's file in the example data; the corpus libFuzzer grows is kept in
``.fuzz/<target>/`` (ignored by git).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the oracle is the hypothesis fuzzers' (tests/test_fuzz_readers.py)
EXAMPLE = ROOT / "examples" / "data" / "example-study"
ADAM = ROOT / "tests" / "data" / "adam" / "example-csv"
NONMEM = ROOT / "tests" / "data" / "nonmem" / "example.csv"
SPEC = ROOT / "models" / "response.toml"


def make_target(target: str, work: Path):
    """(seed bytes, one-input function) for ``dataset:FILE``, ``adam:FILE``, ``nonmem`` or ``spec``."""
    from bayes_blina.data import read_dataset
    from bayes_blina.data.adam import read_adam_folder
    from bayes_blina.data.nonmem import read_nonmem
    from bayes_blina.errors import BayesBlinaError
    from bayes_blina.spec import load_spec
    from test_fuzz_readers import _assert_own_error, check_dataset

    reader, _, name = target.partition(":")
    if reader in ("dataset", "adam"):
        src = EXAMPLE if reader == "dataset" else ADAM
        if not (src / name).is_file():
            raise SystemExit(f"{target}: no file {name!r} in {src} (files: {sorted(p.name for p in src.iterdir())})")
        folder = work / reader
        shutil.copytree(src, folder)
        path, seed = folder / name, (src / name).read_bytes()
        read = (lambda: read_dataset(folder)) if reader == "dataset" else (lambda: read_adam_folder(folder))
        names = (name, name.upper(), Path(name).stem.upper(), "mapping", folder.name)
    elif reader == "nonmem":
        path, seed, names = work / "nm.csv", NONMEM.read_bytes(), ("nm.csv",)
        read = lambda: read_nonmem(path)  # noqa: E731
    elif reader == "spec":
        path, seed, names = work / "spec.toml", SPEC.read_bytes(), ("spec",)
        read = lambda: load_spec(str(path))  # noqa: E731
    else:
        raise SystemExit(f"unknown target {target!r}: dataset:FILE, adam:FILE, nonmem or spec")

    def one_input(data: bytes) -> None:
        path.write_bytes(data)
        if reader == "dataset":
            check_dataset(folder, name, data)  # own error naming the file, or every non-blank row loaded
            return
        try:
            read()
        except BayesBlinaError as e:
            _assert_own_error(e, names)

    return seed, one_input


def main(argv: list[str]) -> None:
    import warnings

    import atheris

    if len(argv) < 2:
        raise SystemExit(__doc__)
    warnings.simplefilter("ignore")  # pandas' dtype guesses on garbage are not findings
    target = argv[1]
    corpus = ROOT / ".fuzz" / target.replace(":", "-")
    corpus.mkdir(parents=True, exist_ok=True)
    with atheris.instrument_imports(include=["bayes_blina"]):
        import bayes_blina.data.adam  # noqa: F401
        import bayes_blina.data.io  # noqa: F401
        import bayes_blina.data.nonmem  # noqa: F401
        import bayes_blina.spec  # noqa: F401
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        seed, one_input = make_target(target, Path(tmp))
        if not any(corpus.iterdir()):
            (corpus / "seed").write_bytes(seed)
        atheris.Setup([argv[0], str(corpus), *argv[2:]], one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
