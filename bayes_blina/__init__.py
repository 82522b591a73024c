"""bayes_blina: Bayesian biomarker and response models for blinatumomab therapy in ALL.

The everyday functions are available from the top level, imported when first used (so that
``import bayes_blina`` stays quick and loads PyMC only when a model is fitted):

>>> import bayes_blina as bb
>>> ds = bb.read_dataset("vonstackelberg2016")        # a folder or a bundled dataset name
>>> spec = bb.load_spec("subgroups")                  # models/subgroups.toml
>>> sorted(ds.tables())
['aggregates', 'summaries']

``bb.fit(spec, ds, seed=1)`` samples a model and returns a :class:`bb.Fit` (posterior, provenance,
family, prepared data, convergence verdict); ``bb.save_fit(fit, "fits/NAME")`` writes it (NetCDF
with provenance) and ``bb.load_fit`` reads it back as the same type; ``bb.simulate_cohort`` makes
a virtual cohort with known truth.
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("bayes_blina")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

#: Top-level name -> module that defines it.
_API = {
    "Dataset": "bayes_blina.data.dataset",
    "read_dataset": "bayes_blina.data.io",
    "write_dataset": "bayes_blina.data.io",
    "read_adam": "bayes_blina.data.adam",
    "read_adam_folder": "bayes_blina.data.adam",
    "read_nonmem": "bayes_blina.data.nonmem",
    "load_spec": "bayes_blina.spec",
    "fit": "bayes_blina.inference",
    "Fit": "bayes_blina.store",
    "save_fit": "bayes_blina.store",
    "load_fit": "bayes_blina.store",
    "convergence_verdict": "bayes_blina.diagnostics",
    "simulate_cohort": "bayes_blina.simulate.cohort",
    "predict_trajectories": "bayes_blina.predict",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'bayes_blina' has no attribute {name!r}; the top-level names "
                         f"are {', '.join(sorted(_API))}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
