"""Hierarchical logistic model of complete remission (CR) within two cycles.

For patient ``i`` (or aggregate row ``j``) in study ``s``::

    logit P(CR) = alpha + u[s] + sum_f beta_f[level_f]
    alpha       = logit(p_typical),            p_typical ~ Beta(1, 1)
    beta_f      ~ ZeroSumNormal(sd_f),         sd_f ~ Gamma(2, 2)   (partial pooling of levels)
    u           ~ ZeroSumNormal(sd_study),     sd_study ~ HalfNormal(0.5)   (between-study effect)

The level effects of a factor sum to zero over the levels **with data** (patients or aggregate
rows used), so ``alpha`` is the logit CR probability of a patient at the average of those levels,
in the average fitted study, and ``p_<factor>[level]`` that of the level with the other factors at
their average. A vocabulary level without data (``adult`` in paediatric data) is not a coordinate
of the fit: like any level not in the fit it is predicted from its factor's spread (recorded in
``data_use['levels_without_data']``). Study effects sum to zero too, so a new study's effect varies
around ``alpha`` by ``sd_study^2 (1 + 1/S)`` (``S`` studies): the same predictive as the usual
``u ~ Normal(0, sd_study)`` with a flat prior on the population mean.

Why: each of these was a direction of the posterior that only the prior informs and that moves
with the intercept (a level without data, the mean of two study effects), a curved ridge on which
NUTS diverged (``docs/sampling.md``). The remaining directions are partially centred by the information the data
carry about them (:mod:`bayes_blina.families.pooling`; ``parameterization = "auto"``, the weights
recorded in ``data_use['centring_weights']``); ``"centered"`` and ``"noncentered"`` force one form.

Patient rows enter as Bernoulli, aggregate rows (published n/N) as binomial. An aggregate row that
pools several dose cohorts (regimen ``'5:5;15:7'``) has the cohort-size-weighted mean of the
cohorts' probabilities. A factor that a row does not specify (for example the age effect of an
``age_group``-free row) is held at its mean, 0.

Margins of the same patients
----------------------------
Published subgroup rows of one study are margins over the same patients (the age-group rows and the
blast-burden rows both add up to the same 70 children). Treating them as independent would count
every patient several times and give intervals narrower than the data allow. Two modes:

``aggregates = "composite"`` (default)
    In each study population, every partition whose family is a model factor is used, each with
    weight ``1/K`` (K partitions), so every patient carries total weight one (a weighted composite
    likelihood). Factor effects are then informed by ``1/K`` of their data: intervals are
    conservative, never narrower than one partition alone would give.
``aggregates = "partition"``
    In each population, exactly one partition is used (the first of ``partition_order`` present):
    an exact likelihood, but the other factors are informed only by their priors.

Rows that describe a subset of another population (column ``subset_of``) are never used, and a study
with patient-level responses must not also contribute aggregate CR rows (that would count its
patients twice): this is an error unless ``aggregates = "ignore"``. Every row left out is recorded
with its reason in the fit's ``data_use``.
"""
from __future__ import annotations

from typing import Any, Literal, override

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bayes_blina._tree import as_dataset
from bayes_blina.errors import DataValidationError, Problem, SpecError
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.families.levels import (FACTORS, NON_FACTOR_FAMILIES, factor_vocabulary, known_unique,
                                         parse_regimen_mix, subject_levels)
from bayes_blina.families.pooling import EffectBlock, effect_block, marginal_block_precision, pooled_effects, zero_sum_basis
from bayes_blina.priors import Prior


class ResponseOptions(BaseModel):
    """Options of the response model."""

    model_config = ConfigDict(extra="forbid")
    factors: list[str] = Field(default_factory=lambda: ["regimen", "age_group", "blast_burden"])
    study_effect: bool = True
    endpoint: str = "CR"
    aggregates: Literal["composite", "partition", "ignore"] = "composite"
    partition_order: list[str] | None = None
    studies: list[str] | None = None
    parameterization: Literal["auto", "centered", "noncentered"] = "auto"

    @field_validator("factors")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        return known_unique(v, FACTORS, "factor", "factors")


class ResponseModel(ModelFamily):
    """Hierarchical logistic model of CR probability (see the module docstring).

    Default priors (override by name in the spec's ``[priors]`` table):

    ``p_typical``      Beta(1, 1): CR probability of a typical patient in a typical study.
    ``sd_<factor>``    Gamma(2, 2): spread of the factor's level effects (logit scale; mean 1). A
                       boundary-avoiding prior: with two to four levels the spread is barely
                       identified and a prior with mass at 0 makes a funnel (divergences).
    ``sd_study``       HalfNormal(0.5): between-study spread (logit scale).
    """

    name = "response"
    report_checks = ("response_ppc",)
    outcome = "binary"
    sbc_patients = 60
    Options = ResponseOptions

    @override
    def default_priors(self) -> dict[str, Prior]:
        pri = {"p_typical": Prior("Beta", alpha=1.0, beta=1.0)}
        for f in self.options.factors:
            pri[f"sd_{f}"] = Prior("Gamma", alpha=2.0, beta=2.0)
        if self.options.study_effect:
            pri["sd_study"] = Prior("HalfNormal", sigma=0.5)
        return pri

    # ------------------------------------------------------------------ data
    def prepare(self, dataset) -> Prepared:
        """Patient-level and aggregate CR data as index arrays (see module docstring)."""
        opt = self.options
        use: dict[str, Any] = {"patients_used": 0, "patients_left_out": [], "aggregate_rows": []}
        subj = dataset.subjects
        agg = dataset.aggregates
        if opt.studies is not None:
            subj = None if subj is None else subj[subj["study"].astype(str).isin(opt.studies)]
            agg = None if agg is None else agg[agg["study"].astype(str).isin(opt.studies)]

        # ---- patient level
        pat = pd.DataFrame(columns=["study", "response"])
        if subj is not None and "response" in subj.columns and len(subj):
            resp = pd.to_numeric(subj["response"], errors="coerce")
            keep = resp.notna()
            for sid in subj.loc[~keep, "subject_id"].astype(str):
                use["patients_left_out"].append({"subject_id": sid, "reason": "response not evaluable (empty)"})
            pat = subj.loc[keep].copy()
            pat["response"] = resp[keep].astype(int)
        patient_studies = set(pat["study"].astype(str)) if len(pat) else set()

        # ---- aggregates
        rows = []
        if agg is not None and len(agg) and opt.aggregates != "ignore":
            a = agg.copy()
            if "endpoint" not in a:
                a["endpoint"] = "CR"
            a = a[a["endpoint"].astype(str) == opt.endpoint]
            for col, default in (("population", "all"), ("subset_of", "")):
                if col not in a:
                    a[col] = default
                a[col] = a[col].fillna(default).astype(str).replace("", default)
            clash = sorted(set(a["study"].astype(str)) & patient_studies)
            if clash:
                raise DataValidationError([Problem(
                    "aggregates.csv", "study", None,
                    "a study with patient-level responses in subjects.csv must not also have aggregate "
                    f"{opt.endpoint} rows (its patients would be counted twice); remove those rows or set "
                    "the model option aggregates = \"ignore\"", ", ".join(clash))])
            rows = self._select_partitions(a, use)
        elif agg is not None and len(agg) and opt.aggregates == "ignore":
            use["aggregate_rows"].append({"rows": int(len(agg)), "used": False, "reason": "aggregates = 'ignore'"})

        if len(pat) == 0 and not rows:
            raise DataValidationError([Problem(
                "subjects.csv/aggregates.csv", None, None,
                f"no usable {opt.endpoint} data: need patient-level 'response' values or aggregate rows "
                f"with endpoint {opt.endpoint!r}")])
        use["patients_used"] = int(len(pat))

        # ---- vocabularies
        studies = sorted(set(pat["study"].astype(str)) | {r["study"] for r in rows})
        levels: dict[str, list[str]] = {}
        pat_levels = {f: subject_levels(pat, f) if len(pat) else pd.Series(dtype=object) for f in opt.factors}
        for f in opt.factors:
            obs = list(pat_levels[f].dropna()) if len(pat) else []
            for r in rows:
                if f == "regimen":
                    obs += [lab for lab, _ in r["mix"]]
                elif r["family"] == f:
                    obs.append(r["level"])
            # only levels with data: a vocabulary level without patients (``adult`` in paediatric
            # data) would make a direction of the zero-sum effects that only the prior informs and
            # that moves with the intercept (divergences); it is predicted like any level not in
            # the fit, from the factor's spread (recorded in data_use)
            seen = set(obs)
            levels[f] = [lab for lab in factor_vocabulary(f, obs) if lab in seen]
            unused = [lab for lab in factor_vocabulary(f, []) if lab not in seen]
            if unused:
                use.setdefault("levels_without_data", {})[f] = unused
            if not levels[f]:
                levels[f] = ["(none)"]

        def idx(f: str, values) -> np.ndarray:
            lut = {lab: i for i, lab in enumerate(levels[f])}
            return np.array([lut.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)

        arrays: dict[str, np.ndarray] = {}
        study_lut = {s: i for i, s in enumerate(studies)}
        arrays["pat_y"] = pat["response"].to_numpy(dtype=np.int64) if len(pat) else np.zeros(0, np.int64)
        arrays["pat_study"] = np.array([study_lut[s] for s in pat["study"].astype(str)], dtype=np.int64)
        for f in opt.factors:
            arrays[f"pat_{f}"] = idx(f, list(pat_levels[f])) if len(pat) else np.zeros(0, np.int64)
            missing = int((arrays[f"pat_{f}"] < 0).sum())
            if missing:
                use.setdefault("patients_missing_factor", {})[f] = missing
        # patients with the same study and levels are exchangeable: their Bernoulli terms are one
        # binomial cell (identical posterior, far fewer terms); pointwise log-likelihood stays per patient
        key = np.column_stack([arrays["pat_study"]] + [arrays[f"pat_{f}"] for f in opt.factors]) \
            if len(pat) else np.zeros((0, 1 + len(opt.factors)), np.int64)
        cells, pat_cell = np.unique(key, axis=0, return_inverse=True)
        arrays["pat_cell"] = pat_cell.reshape(-1).astype(np.int64)
        arrays["cell_n"] = np.bincount(arrays["pat_cell"], minlength=len(cells)).astype(np.int64)
        arrays["cell_y"] = np.bincount(arrays["pat_cell"], weights=arrays["pat_y"], minlength=len(cells)).astype(np.int64)
        arrays["cell_study"] = cells[:, 0].astype(np.int64)
        for k, f in enumerate(opt.factors):
            arrays[f"cell_{f}"] = cells[:, k + 1].astype(np.int64)

        # aggregate components (one per regimen of a mixture row)
        comp_row, comp_w, comp_reg = [], [], []
        for j, r in enumerate(rows):
            total = sum(c for _, c in r["mix"])
            for lab, c in r["mix"]:
                comp_row.append(j)
                comp_w.append(c / total)
                comp_reg.append(lab)
        arrays["agg_r"] = np.array([r["responders"] for r in rows], dtype=np.int64)
        arrays["agg_n"] = np.array([r["n"] for r in rows], dtype=np.int64)
        arrays["agg_weight"] = np.array([r["weight"] for r in rows], dtype=float)
        arrays["agg_study"] = np.array([study_lut[r["study"]] for r in rows], dtype=np.int64)
        arrays["comp_row"] = np.array(comp_row, dtype=np.int64)
        arrays["comp_w"] = np.array(comp_w, dtype=float)
        for f in opt.factors:
            if f == "regimen":
                arrays["comp_regimen"] = idx(f, comp_reg)
            else:
                per_row = [r["level"] if r["family"] == f else None for r in rows]
                arrays[f"comp_{f}"] = idx(f, [per_row[j] for j in comp_row])
        coords = {"study": studies, **{f: levels[f] for f in opt.factors},
                  "cell": [f"cell{k}" for k in range(len(arrays["cell_n"]))],
                  "agg_row": [f"{r['study']}|{r['family']}|{r['level']}" for r in rows]}
        # information per level (patients, aggregate rows counted with their weight)
        info = {}
        for f in opt.factors:
            counts = np.zeros(len(levels[f]))
            pi = arrays[f"pat_{f}"]
            np.add.at(counts, pi[pi >= 0], 1.0)
            ci = arrays[f"comp_{f}"]
            if len(ci):
                w = arrays["agg_n"][arrays["comp_row"]] * arrays["agg_weight"][arrays["comp_row"]] * arrays["comp_w"]
                np.add.at(counts, ci[ci >= 0], w[ci >= 0])
            info[f] = counts
        use["information_per_level"] = {f: dict(zip(levels[f], np.round(c, 1).tolist())) for f, c in info.items()}
        # each pooled block's sampler coordinates follow the information the data carry about it
        blocks = self._effect_blocks(arrays, levels, len(studies))
        use["parameterization"] = {b: blk.describe() for b, blk in blocks.items()}
        use["centring_weights"] = {b: np.round(blk.weights, 4).tolist() for b, blk in blocks.items()}
        use["aggregate_rows_used"] = [
            {k: r[k] for k in ("study", "population", "family", "level", "regimen", "responders", "n", "weight")}
            for r in rows
        ]
        use["levels"] = levels
        use["studies"] = studies
        for b, blk in blocks.items():
            arrays[f"basis_{b}"] = blk.basis
            arrays[f"centring_{b}"] = blk.weights
        return Prepared(arrays=arrays, coords=coords, data_use=use)

    def _effect_blocks(self, A: dict[str, np.ndarray], levels: dict[str, list[str]], n_studies: int
                       ) -> dict[str, EffectBlock]:
        """Sampler coordinates of each pooled block (factor effects, study effects).

        The data's precision about each block comes from the Fisher information of the logistic
        model at the pooled response rate (patient cells and aggregate components with their
        composite weights), the other coefficients integrated out under their priors (intercept:
        the logistic prior of ``logit(p_typical)`` under Beta(1, 1), precision 3 / pi^2); see
        :mod:`bayes_blina.families.pooling`.
        """
        opt = self.options
        use_study = opt.study_effect and n_studies > 1
        bases = {f: zero_sum_basis(len(levels[f])) for f in opt.factors}
        if use_study:  # zero-sum: the intercept is the average of the fitted studies
            bases["study"] = zero_sum_basis(n_studies)
        s0 = {f: (self.priors[f"sd_{f}"].quantile(0.001), self.priors[f"sd_{f}"].quantile(0.999)) for f in opt.factors}
        if use_study:
            s0["study"] = (self.priors["sd_study"].quantile(0.001), self.priors["sd_study"].quantile(0.999))
        mode = opt.parameterization
        if mode != "auto":
            return {b: effect_block(B, None, s0[b], mode) for b, B in bases.items()}
        # units: patient cells and aggregate components
        unit_n = np.r_[A["cell_n"].astype(float),
                       A["agg_n"][A["comp_row"]] * A["agg_weight"][A["comp_row"]] * A["comp_w"]]
        unit_study = np.r_[A["cell_study"], A["agg_study"][A["comp_row"]]]
        yes = float(A["cell_y"].sum() + (A["agg_r"] * A["agg_weight"]).sum())
        total = float(A["cell_n"].sum() + (A["agg_n"] * A["agg_weight"]).sum())
        p_bar = float(np.clip(yes / total if total > 0 else 0.5, 0.05, 0.95))
        cols, prec, slices, k = [np.ones((len(unit_n), 1))], [3.0 / np.pi ** 2], {}, 1
        for b, B in bases.items():
            lev = unit_study if b == "study" else np.r_[A[f"cell_{b}"], A[f"comp_{b}"]]
            rows = np.zeros((len(unit_n), B.shape[1]))
            ok = lev >= 0
            rows[ok] = B[lev[ok]]
            cols.append(rows)
            prec += [1.0 / float(np.sqrt(s0[b][0] * s0[b][1])) ** 2] * B.shape[1]  # geometric mid-range
            slices[b] = slice(k, k + B.shape[1])
            k += B.shape[1]
        X = np.hstack(cols)
        weight = unit_n * p_bar * (1.0 - p_bar)
        return {b: effect_block(B, marginal_block_precision(X, weight, np.array(prec), slices[b]) if B.shape[1] else None,
                                s0[b], "auto")
                for b, B in bases.items()}

    def _select_partitions(self, a: pd.DataFrame, use: dict) -> list[dict]:
        """Pick the partitions to use in each (study, population) and their composite weights."""
        opt = self.options
        order = opt.partition_order or (list(opt.factors) + list(NON_FACTOR_FAMILIES))
        rows: list[dict] = []
        for (study, pop), g in a.groupby(["study", "population"], sort=True):
            if (g["subset_of"] != "").any():
                sub = g[g["subset_of"] != ""]
                for (fam, parent), rs in sub.groupby(["family", "subset_of"], sort=False):
                    use["aggregate_rows"].append({
                        "study": str(study), "population": str(pop), "family": str(fam), "rows": int(len(rs)),
                        "used": False, "reason": f"population {pop!r} is a subset of {parent!r}"})
                g = g[g["subset_of"] == ""]
                if g.empty:
                    continue
            families = list(dict.fromkeys(g["family"].astype(str)))
            if opt.aggregates == "composite":
                chosen = [f for f in families if f in opt.factors]
                if not chosen:
                    chosen = [next((f for f in order if f in families), families[0])]
            else:
                chosen = [next((f for f in order if f in families), families[0])]
            weight = 1.0 / len(chosen)
            for f in families:
                if f not in chosen:
                    use["aggregate_rows"].append({
                        "study": str(study), "population": str(pop), "family": f, "used": False,
                        "reason": (f"partition '{f}' is a margin of the same patients as {chosen}; "
                                   + ("not a model factor" if opt.aggregates == "composite"
                                      else "partition mode uses one partition"))})
            for _, r in g[g["family"].astype(str).isin(chosen)].iterrows():
                mix = parse_regimen_mix(r["regimen"])
                rows.append({
                    "study": str(study), "population": str(pop), "family": str(r["family"]),
                    "level": str(r["level"]), "regimen": str(r["regimen"]), "mix": mix,
                    "responders": int(r["responders"]), "n": int(r["n"]), "weight": weight,
                })
        return rows

    # ------------------------------------------------------------------ model
    def build(self, prepared: Prepared):
        """The PyMC model (non-centred level and study effects)."""
        import pymc as pm
        import pytensor.tensor as pt

        opt, A = self.options, prepared.arrays
        use_study = opt.study_effect and len(prepared.coords["study"]) > 1
        coords = {k: v for k, v in prepared.coords.items() if k != "agg_row" or v}
        with pm.Model(coords=coords) as model:
            p_typical = self.priors["p_typical"].create("p_typical")
            alpha = pm.Deterministic("alpha", pm.math.logit(p_typical))
            effects = {}
            for f in opt.factors:
                sd = self.priors[f"sd_{f}"].create(f"sd_{f}")
                # zero-sum effects, one level: 0 (absorbed by alpha)
                beta = pooled_effects(f"beta_{f}", sd, self._block(A, f), dims=f)
                effects[f] = pt.concatenate([beta, pt.zeros(1)])  # index -1 -> 0 (level unknown)
                pm.Deterministic(f"p_{f}", pm.math.invlogit(alpha + beta), dims=f)
            if use_study:
                sd_s = self.priors["sd_study"].create("sd_study")
                u = pooled_effects("study_effect", sd_s, self._block(A, "study"), dims="study")
            else:
                u = pt.zeros(len(prepared.coords["study"]))

            if len(A["pat_y"]):
                eta = alpha + u[A["cell_study"]]
                for f in opt.factors:
                    eta = eta + effects[f][A[f"cell_{f}"]]
                p_cell = pm.Deterministic("p_cell", pm.math.invlogit(eta), dims="cell")
                cell_y = np.asarray(A["cell_y"], dtype=np.int64)
                if prepared.swappable:  # SBC swaps the counts in
                    cell_y = pm.Data("cell_y", cell_y)
                pm.Binomial("y_cells", n=A["cell_n"], p=p_cell, observed=cell_y, dims="cell")

            if len(A["agg_r"]):
                eta_c = alpha + u[A["agg_study"][A["comp_row"]]]
                for f in opt.factors:
                    eta_c = eta_c + effects[f][A[f"comp_{f}"]]
                pc = pm.math.invlogit(eta_c) * A["comp_w"]
                p_agg = pt.zeros(len(A["agg_r"]))
                p_agg = pt.inc_subtensor(p_agg[A["comp_row"]], pc)
                p_agg = pm.Deterministic("p_agg", pt.clip(p_agg, 1e-12, 1 - 1e-12), dims="agg_row")
                agg_r = np.asarray(A["agg_r"], dtype=np.int64)
                if prepared.swappable:
                    agg_r = pm.Data("agg_r", agg_r)
                logp = pm.logp(pm.Binomial.dist(n=A["agg_n"], p=p_agg), agg_r)
                pm.Potential("agg_loglik", pt.sum(A["agg_weight"] * logp))
        return model

    @staticmethod
    def _block(A: dict[str, np.ndarray], name: str) -> EffectBlock:
        return EffectBlock(basis=A[f"basis_{name}"], weights=A[f"centring_{name}"],
                           precision=np.full(A[f"centring_{name}"].shape, np.nan))

    def log_likelihood(self, idata, prepared: Prepared) -> dict[str, Any]:
        """Pointwise log-likelihood: ``y`` per patient and ``y_agg`` per aggregate row (weighted)."""
        import xarray as xr
        from scipy import stats

        out = {}
        A = prepared.arrays
        if len(A["pat_y"]):
            p = idata.posterior["p_cell"].values[..., A["pat_cell"]]
            ll = stats.bernoulli.logpmf(A["pat_y"], p)
            out["y"] = xr.DataArray(ll, dims=("chain", "draw", "patient"),
                                    coords={"chain": idata.posterior.chain, "draw": idata.posterior.draw})
        if len(A["agg_r"]):
            p = idata.posterior["p_agg"]
            ll = stats.binom.logpmf(A["agg_r"], A["agg_n"], p.values) * A["agg_weight"]
            out["y_agg"] = xr.DataArray(ll, dims=("chain", "draw", "agg_row"),
                                        coords={"chain": p.chain, "draw": p.draw, "agg_row": p.agg_row})
        return out

    def pointwise_observed(self) -> list[str]:
        """Observed variables whose log-likelihood PyMC computes: none (``log_likelihood`` gives it
        per patient, not per cell)."""
        return []

    @override
    def observed_arrays(self, prepared: Prepared) -> dict[str, np.ndarray]:
        A = prepared.arrays
        if not len(A["agg_r"]):
            return {}
        return {"agg_r": A["agg_r"], "agg_n": A["agg_n"], "agg_weight": A["agg_weight"]}

    @override
    def summary_vars(self) -> list[str]:
        v = ["p_typical", "alpha"]
        for f in self.options.factors:
            v += [f"sd_{f}", f"beta_{f}", f"p_{f}"]
        if self.options.study_effect:
            v += ["sd_study", "study_effect"]
        return v


def response_draws(idata, subjects: pd.DataFrame, *, factors: list[str], study: str | None = None,
                   own_study: bool = False, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Posterior draws of each subject's CR probability.

    Parameters
    ----------
    idata : xarray.DataTree
        A fitted response model.
    subjects : DataFrame
        Canonical subjects table (``subject_id``, the model's factor columns, ``study`` if
        ``own_study``).
    factors : list of str
        The model's factors (from the fit's provenance).
    study : str, optional
        Use this fitted study's effect for every subject.
    own_study : bool
        Use each subject's own (fitted) study effect from its ``study`` column.
    seed : int
        Seed for the draws of new-study and new-level effects.

    Returns
    -------
    p : ndarray, shape (n_subjects, n_samples)
    notes : list of str
        Per subject, levels that were unknown or not in the training data. Neither study nor
        own_study: a new study, integrating over the between-study effect.
    """
    post = as_dataset(idata.posterior).stack(sample=("chain", "draw"))
    S = post.sizes["sample"]
    rng = np.random.default_rng(seed)
    eta = np.repeat(post["alpha"].values[None, :], len(subjects), axis=0)
    notes: list[list[str]] = [[] for _ in range(len(subjects))]
    for f in factors:
        labels = [str(x) for x in post[f"beta_{f}"].coords[f].values]
        beta = post[f"beta_{f}"].values  # (level, sample)
        sd = post[f"sd_{f}"].values
        new_draws: dict[str, np.ndarray] = {}
        for i, v in enumerate(subject_levels(subjects, f).tolist()):
            if v is None:
                notes[i].append(f"{f} unknown: effect at its mean")
            elif v in labels:
                eta[i] += beta[labels.index(v)]
            else:  # one draw per level, shared by all subjects with that level
                if v not in new_draws:
                    new_draws[v] = rng.normal(0.0, 1.0, S) * sd
                eta[i] += new_draws[v]
                notes[i].append(f"{f}={v} not in the fitted data: drawn from the level spread")
    if "study_effect" in post:
        studies = [str(x) for x in post["study_effect"].coords["study"].values]
        u = post["study_effect"].values
        wanted = subjects["study"].astype(str).tolist() if own_study else [study] * len(subjects)
        new_u = None
        for i, st in enumerate(wanted):
            if st is None:
                if new_u is None:  # study effects sum to zero: a new study's varies by sd^2 (1 + 1/S)
                    new_u = rng.normal(0.0, 1.0, S) * post["sd_study"].values * np.sqrt(1.0 + 1.0 / len(studies))
                eta[i] += new_u
            elif st in studies:
                eta[i] += u[studies.index(st)]
            else:
                raise SpecError(f"study {st!r} is not in the fit; fitted studies: {', '.join(studies)}")
    return 1.0 / (1.0 + np.exp(-eta)), ["; ".join(n) for n in notes]


def predict_response(idata, subjects: pd.DataFrame, *, factors: list[str], prob: float = 0.95,
                     study: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Posterior CR probability for new patients.

    Parameters are those of :func:`response_draws`; ``prob`` is the central interval probability.

    Returns
    -------
    DataFrame
        ``subject_id, p_cr_mean, p_cr_median, p_cr_lower, p_cr_upper`` plus ``note`` naming levels
        that were unknown or not in the training data (predicted from their prior spread).
    """
    if not 0 < prob < 1:
        raise SpecError(f"prob must be between 0 and 1 (found {prob})")
    p, notes = response_draws(idata, subjects, factors=factors, study=study, seed=seed)
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    return pd.DataFrame({
        "subject_id": subjects["subject_id"].astype(str).to_numpy(),
        "p_cr_mean": p.mean(axis=1),
        "p_cr_median": np.median(p, axis=1),
        "p_cr_lower": np.quantile(p, lo, axis=1),
        "p_cr_upper": np.quantile(p, hi, axis=1),
        "note": notes,
    })


def subgroup_rates(idata, subjects: pd.DataFrame, *, factors: list[str], by: str, seed: int = 0) -> pd.DataFrame:
    """Posterior draws of the mean CR probability of the patients in each level of ``by``.

    The standardised subgroup rate: the average, over the patients of a subgroup as they are
    (their own other covariates and study), of their modelled CR probability.

    Returns
    -------
    DataFrame
        One column per level of ``by``, one row per posterior draw.
    """
    p, _ = response_draws(idata, subjects, factors=factors, own_study="study_effect" in idata.posterior, seed=seed)
    levels = subject_levels(subjects, by)
    return pd.DataFrame({lv: p[(levels == lv).to_numpy()].mean(axis=0) for lv in levels.dropna().unique()})
