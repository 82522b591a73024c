"""The fit store: a fit is a folder of data, never a pickle.

``FITDIR/`` holds

``posterior.nc``
    ArviZ (1.x) DataTree in NetCDF (groups ``posterior``, ``sample_stats``, ``log_likelihood``,
    ``observed_data``, ``constant_data``, and ``prior`` when sampled).
``provenance.json``
    Package and library versions, the model spec as written and as parsed, the SHA-256 of the input
    data and how the data were used, sampler settings and seed, creation time, the convergence
    verdict, the SHA-256 of ``posterior.nc``, and ``integrity``: the SHA-256 of the record itself
    (canonical JSON without that field), so that a hand-edited provenance is refused.

Guarantees (docs/fit-store.md; each has a test in ``tests/test_store*.py``):

* Writing is atomic: everything goes to a temporary folder beside the target, which is then moved
  into place (on Linux swapped with the old fit in one ``renameat2(RENAME_EXCHANGE)`` call), so a
  process killed at any point leaves the old fit or the new one, never a mixture.
* One writer at a time per target: a lock file beside the target (``.NAME.lock``, holding the
  writer's pid and host) refuses a second writer; a lock left by a killed process is taken over.
* An existing fit is replaced only with ``force=True``.
* Loading reads plain data (JSON, NetCDF), checks the format version, the provenance's integrity
  and the posterior's checksum, and never executes anything from the files.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bayes_blina._atomic import make_parent, swap_in, writer_lock
from bayes_blina.diagnostics import Verdict, convergence_verdict
from bayes_blina.errors import FitExistsError, FitStoreError
from bayes_blina.spec import ModelSpec, parse_spec

FORMAT = "bayes_blina.fit"
FORMAT_VERSION = 3
#: Format versions this release reads: 1 (bayes_blina 0.1, ArviZ 0.x InferenceData), 2 (ArviZ 1.x
#: DataTree) and 3 (2 with the provenance's integrity digest, required from 3 on). All are the same
#: NetCDF groups, so older fits load unchanged.
READABLE_VERSIONS = (1, 2, 3)
POSTERIOR = "posterior.nc"
PROVENANCE = "provenance.json"
_REQUIRED = ("format", "format_version", "package", "created", "model", "data", "sampler", "diagnostics", "files")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("bayes_blina", "pymc", "pytensor", "arviz", "numpy", "pandas", "xarray", "nutpie", "numpyro"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def build_provenance(*, spec: ModelSpec, family, prepared, verdict: Verdict, dataset_name: str,
                     dataset_origin: str, data_sha256: str, backend: str, timing: dict[str, Any]) -> dict[str, Any]:
    """Provenance record of a sampling run (what :meth:`Fit.from_sampling` records)."""
    return _jsonable({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package": {"name": "bayes_blina", "version": _versions().get("bayes_blina", "unknown")},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "name": spec.name,
            "family": spec.family,
            "spec_path": spec.path,
            "spec_text": spec.text,
            "spec": spec.to_toml_dict(),
            "resolved": family.describe(),
        },
        "data": {
            "name": dataset_name,
            "origin": dataset_origin,
            "sha256": data_sha256,
            "use": prepared.data_use,
        },
        "sampler": {**spec.sampler.model_dump(), "backend_used": backend, "versions": _versions()},
        "seed": spec.sampler.seed,
        "timing": timing,
        "diagnostics": verdict.to_dict(),
        "platform": {"machine": platform.machine(), "system": platform.system(), "cpus": os.cpu_count()},
    })


def _canonical_digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "integrity"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=True).encode("ascii")).hexdigest()


def seal_provenance(prov: dict[str, Any]) -> str:
    """The provenance as written: JSON with its ``integrity`` digest over the rest of the record."""
    plain = json.loads(json.dumps(prov, default=str))  # the record exactly as it will read back
    plain["integrity"] = {"algorithm": "sha256-canonical-json", "digest": _canonical_digest(plain)}
    return json.dumps(plain, indent=2)


def save_fit(fit: Fit, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a fit atomically to ``out`` (a folder): its posterior and its provenance record.

    Raises
    ------
    FitExistsError
        If ``out`` exists and ``force`` is false.
    FitStoreError
        If another process is writing to ``out`` at the same time.
    OutputError
        If ``out``'s folder cannot be created (e.g. a parent is a file).
    """
    if not isinstance(fit, Fit):
        raise FitStoreError(f"save_fit takes a Fit (from bayes_blina.fit or load_fit); found {type(fit).__name__}")
    out = Path(out)
    make_parent(out)
    with writer_lock(out):
        if out.exists() and not force:
            raise FitExistsError(f"a fit already exists at {out}; choose another --out or pass --force to replace it")
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            prov = {k: v for k, v in json.loads(json.dumps(fit.provenance, default=str)).items()
                    if k not in ("files", "integrity")}
            idata = fit.idata
            idata.posterior.attrs["bayes_blina_provenance"] = json.dumps(
                {k: prov[k] for k in ("format", "created", "model")}, default=str)
            idata.to_netcdf(str(tmp / POSTERIOR), engine="h5netcdf")
            prov["files"] = {POSTERIOR: sha256_file(tmp / POSTERIOR)}
            (tmp / PROVENANCE).write_text(seal_provenance(prov), encoding="utf-8")
            swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


@dataclass(eq=False)
class Fit:
    """A fitted model: the one type of a fit in memory (:func:`bayes_blina.fit`) and of a fit read
    back from the store (:func:`load_fit`).

    A fit is its posterior and its provenance; everything else is derived from those two and
    rebuilt on first use for a stored fit (the store owns reconstruction). A fit made in this
    process keeps the family object and prepared data it was built from.

    Attributes
    ----------
    idata : xarray.DataTree
        Posterior, ``sample_stats``, ``log_likelihood``, ``observed_data``, ``constant_data`` (the
        prepared arrays) and, when sampled, ``prior``.
    provenance : dict
        The record :func:`save_fit` writes (``provenance.json``): the spec, the data's SHA-256 and
        use, sampler settings, timing, the verdict at fit time; a stored fit's record also holds
        ``files`` and ``integrity``.
    path : Path or None
        The fit's folder; ``None`` for a fit not read from the store.

    Examples
    --------
    >>> import bayes_blina as bb
    >>> fit = bb.load_fit("tests/data/fit-0.1.0-response")  # doctest: +SKIP
    >>> fit.family_name, fit.verdict.passed  # doctest: +SKIP
    ('response', True)
    """

    idata: Any
    provenance: dict[str, Any]
    path: Path | None = None

    @classmethod
    def from_sampling(cls, idata, *, spec: ModelSpec, family, prepared, verdict: Verdict, dataset_name: str,
                      dataset_origin: str, data_sha256: str, backend: str, timing: dict[str, Any]) -> "Fit":
        """The fit of a sampling run in this process, with its provenance recorded now.

        The provenance is the plain-JSON record :func:`save_fit` writes, so a fit in memory and
        the same fit read back hold the same record; ``family``, ``prepared`` and ``verdict`` are
        the objects of the run.
        """
        prov = json.loads(json.dumps(build_provenance(
            spec=spec, family=family, prepared=prepared, verdict=verdict, dataset_name=dataset_name,
            dataset_origin=dataset_origin, data_sha256=data_sha256, backend=backend, timing=timing), default=str))
        out = cls(idata=idata, provenance=prov)
        out.__dict__.update(spec=spec, family=family, prepared=prepared, verdict=verdict)  # the run's own objects
        return out

    @cached_property
    def spec(self) -> ModelSpec:
        """The model spec the fit was made with."""
        m = self.provenance["model"]
        return parse_spec(m["spec"], text=m.get("spec_text", ""), path=m.get("spec_path", ""))

    @property
    def family_name(self) -> str:
        """The registered name of the fit's model family."""
        return self.provenance["model"]["family"]

    @property
    def options(self) -> dict[str, Any]:
        """The family's resolved options, as recorded."""
        return self.provenance["model"]["resolved"]["options"]

    @cached_property
    def family(self):
        """The model family (rebuilt from the recorded options and priors for a stored fit)."""
        from bayes_blina.families import get_family

        return get_family(self.family_name)(self.options, self.provenance["model"]["resolved"].get("priors"))

    @cached_property
    def prepared(self):
        """The prepared data: arrays from ``constant_data``, coordinates from the groups, the data use."""
        import numpy as np

        from bayes_blina._tree import as_dataset
        from bayes_blina.families.base import Prepared

        arrays, coords = {}, {}
        for g in self.idata.children:
            ds = as_dataset(self.idata[g])
            for name, values in ds.coords.items():
                if name not in ("chain", "draw") and values.ndim == 1:
                    coords.setdefault(str(name), [v.item() if hasattr(v, "item") else v for v in values.values])
            if g == "constant_data":
                arrays = {str(k): np.asarray(ds[k].values) for k in ds.data_vars}
        return Prepared(arrays=arrays, coords=coords, data_use=self.provenance["data"].get("use", {}))

    @cached_property
    def verdict(self) -> Verdict:
        """The convergence verdict: a stored fit is re-judged with its spec's gate (the stored
        verdict is not trusted); an approximate fit fails it with the reason "not MCMC"."""
        from bayes_blina.approx import approximate_method, approximate_verdict

        method = approximate_method(self.idata)
        if method is not None:
            return approximate_verdict(self.idata, method, self.spec.gate)
        return convergence_verdict(self.idata, self.spec.gate)

    @property
    def dataset_name(self) -> str:
        """Name of the dataset the fit was made on."""
        return self.provenance["data"]["name"]

    @property
    def dataset_origin(self) -> str:
        """Where that dataset came from (folder, bundled name, ADaM files)."""
        return self.provenance["data"]["origin"]

    @property
    def data_sha256(self) -> str:
        """SHA-256 of the dataset's content (:meth:`~bayes_blina.data.dataset.Dataset.sha256`)."""
        return self.provenance["data"]["sha256"]

    @property
    def backend(self) -> str:
        """The sampler back end (or approximation) that made the draws."""
        return self.provenance["sampler"]["backend_used"]

    @property
    def timing(self) -> dict[str, Any]:
        """Seconds spent: ``compile_s``, ``sampling_s``, ``wall_s`` (as recorded)."""
        return self.provenance.get("timing") or {}


def __getattr__(name: str):
    if name == "StoredFit":  # the name of a stored fit before issue 17 made fits one type
        import warnings

        warnings.warn("bayes_blina.store.StoredFit is bayes_blina.store.Fit", DeprecationWarning, stacklevel=2)
        return Fit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_fit(path: str | os.PathLike, *, verify: bool = True) -> Fit:
    """Read a fit folder written by :func:`save_fit`.

    Parameters
    ----------
    path : str or path
        The fit folder.
    verify : bool
        Check the NetCDF file's SHA-256 against the provenance (default).

    Raises
    ------
    FitStoreError
        If the folder or a file is missing, the provenance is unreadable or incomplete, of an
        unsupported format version, the posterior file was modified (checksum mismatch), or it
        cannot be read as NetCDF.
    """
    import arviz as az

    path = Path(path)
    if not path.is_dir():
        left = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.is_dir() else []
        if left:  # only where the one-call swap is unavailable: killed between its two renames
            raise FitStoreError(f"no fit at {path}, but an interrupted replacement left the previous fit at "
                                f"{left[-1]}: rename it to {path.name} to restore it")
        raise FitStoreError(f"no fit at {path}: expected a folder written by 'bayes-blina fit'")
    prov_file, post_file = path / PROVENANCE, path / POSTERIOR
    for f in (prov_file, post_file):
        if not f.is_file():
            raise FitStoreError(f"fit at {path} is incomplete: {f.name} is missing")
    try:
        prov = json.loads(prov_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FitStoreError(f"{prov_file} is not valid JSON ({e}); the fit cannot be trusted") from None
    if not isinstance(prov, dict):
        raise FitStoreError(f"{prov_file} does not hold a provenance record")
    missing = [k for k in _REQUIRED if k not in prov]
    if missing:
        raise FitStoreError(f"{prov_file} lacks required field(s) {', '.join(missing)}")
    if prov["format"] != FORMAT:
        raise FitStoreError(f"{path} is not a bayes_blina fit (format {prov['format']!r})")
    if prov["format_version"] not in READABLE_VERSIONS:
        wrote = (prov.get("package") or {}).get("version", "unknown")
        this = _versions().get("bayes_blina", "unknown")
        newer = isinstance(prov["format_version"], int) and prov["format_version"] > FORMAT_VERSION
        raise FitStoreError(
            f"{path} was written by bayes_blina {wrote} in fit format version {prov['format_version']}; "
            f"this bayes_blina ({this}) reads versions {', '.join(map(str, READABLE_VERSIONS))}: "
            + ("upgrade bayes_blina to read it" if newer else "refit the model with this version"))
    seal = prov.get("integrity")
    if seal is None and prov["format_version"] >= 3:
        raise FitStoreError(f"{prov_file} lacks its integrity digest: it was edited or not written by bayes_blina")
    if seal is not None and (not isinstance(seal, dict) or seal.get("digest") != _canonical_digest(prov)):
        raise FitStoreError(
            f"{prov_file} was edited after the fit was written (its integrity digest does not match its content); "
            "the record of how the fit was made cannot be trusted: restore the file or refit")
    files = prov["files"] if isinstance(prov["files"], dict) else {}
    if verify:
        expected = files.get(POSTERIOR)
        actual = sha256_file(post_file)
        if expected != actual:
            raise FitStoreError(
                f"{post_file} does not match its checksum in provenance.json (expected {expected}, found {actual}): "
                "the file was modified or corrupted after the fit was written; refit or restore it")
    try:
        idata = az.from_netcdf(str(post_file), engine="h5netcdf")
        for g in idata.children:
            idata[g].load()
    except Exception as e:  # any reader failure is a store error, named clearly
        raise FitStoreError(f"cannot read {post_file} as NetCDF (ArviZ DataTree) ({type(e).__name__}: {e})") from None
    if "posterior" not in idata.children:
        raise FitStoreError(f"{post_file} has no posterior group")
    from bayes_blina.families import get_family

    get_family(prov["model"]["family"])  # unknown family -> clear error
    return Fit(idata=idata, provenance=prov, path=path)
