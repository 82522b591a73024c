"""Tests of bayes_blina.events: infusion events, time features, PK model, regimens."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_blina.errors import BayesBlinaError
from bayes_blina.events import (
    EVENT_KINDS,
    DosingInputError,
    SteadyStatePK,
    infusion_events,
    regimen_label,
    standard_schedule,
    time_features,
)


def dosing_rows(subject_id: str, rows: list[tuple[int, float, float, float]]) -> pd.DataFrame:
    """Canonical dosing rows from (cycle, start_h, end_h, dose) tuples."""
    cycle, start, end, dose = zip(*rows)
    return pd.DataFrame(
        {
            "subject_id": subject_id,
            "cycle": list(cycle),
            "start_h": np.asarray(start, dtype=float),
            "end_h": np.asarray(end, dtype=float),
            "dose": np.asarray(dose, dtype=float),
            "dose_unit": "ug/m2/day",
            "dose_ug_m2_day": np.asarray(dose, dtype=float),
        }
    )


def schedule(regimen: str, subject_id: str = "P1", n_cycles: int = 2) -> pd.DataFrame:
    d = standard_schedule(regimen, n_cycles)
    d.insert(0, "subject_id", subject_id)
    return d


def obs(subject_id: str, times: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"subject_id": subject_id, "time_h": np.asarray(times, dtype=float)})


def row_at(features: pd.DataFrame, time_h: float) -> pd.Series:
    hit = features[features["time_h"] == time_h]
    assert len(hit) == 1
    return hit.iloc[0]


# ----------------------------------------------------------------------------------------------
# events
# ----------------------------------------------------------------------------------------------


def test_flat_two_cycles_events():
    ev = infusion_events(schedule("15"))
    assert list(ev.columns) == [
        "subject_id", "event_index", "kind", "time_h", "cycle", "dose", "previous_dose",
        "exposure_index", "first_exposure",
    ]
    assert ev["kind"].tolist() == ["start", "cycle_start"]
    assert ev["time_h"].tolist() == [0.0, 1008.0]
    assert ev["cycle"].tolist() == [1, 2]
    assert ev["event_index"].tolist() == [0, 1]
    assert ev["exposure_index"].tolist() == [0, 1]
    assert ev["first_exposure"].tolist() == [True, False]
    assert ev["previous_dose"].tolist() == [0.0, 0.0]
    assert ev["dose"].tolist() == [15.0, 15.0]


def test_flat_two_cycles_features():
    f = time_features(obs("P1", [0, 24, 671.5, 700, 1008, 1010]), schedule("15"))
    r = row_at(f, 700)  # between cycles
    assert r["cycle"] == 1 and r["dose_current"] == 0 and not r["on_infusion"]
    assert r["time_since_cycle_start_h"] == 700 and r["time_since_event_h"] == 700
    assert r["first_exposure"]
    r = row_at(f, 1010)
    assert r["cycle"] == 2 and r["event_kind"] == "cycle_start" and r["dose_current"] == 15
    assert r["time_since_cycle_start_h"] == 2 and r["time_since_event_h"] == 2
    assert not r["first_exposure"] and r["exposure_index"] == 1 and r["event_index"] == 1
    assert r["time_since_first_dose_h"] == 1010
    r = row_at(f, 1008)  # an event at exactly time_h is "at or before"
    assert r["cycle"] == 2 and r["time_since_event_h"] == 0 and r["on_infusion"]


def test_step_5_15():
    d = schedule("5-15")
    ev = infusion_events(d)
    assert ev["kind"].tolist() == ["start", "step_up", "cycle_start"]
    step = ev.iloc[1]
    assert step["time_h"] == 168 and step["previous_dose"] == 5 and step["dose"] == 15
    assert step["cycle"] == 1 and not step["first_exposure"]

    f = time_features(obs("P1", [167, 168, 200]), d)
    assert f["time_since_event_h"].tolist() == [167.0, 0.0, 32.0]
    assert f["time_since_cycle_start_h"].tolist() == [167.0, 168.0, 200.0]
    assert f["event_kind"].tolist() == ["start", "step_up", "step_up"]
    assert f["dose_current"].tolist() == [5.0, 15.0, 15.0]
    assert f["dose_previous"].tolist() == [0.0, 5.0, 5.0]
    assert f["first_exposure"].tolist() == [True, False, False]


def test_step_5_15_30():
    d = schedule("5-15-30")
    ev = infusion_events(d)
    assert ev["kind"].tolist() == ["start", "step_up", "step_up", "cycle_start"]
    assert ev["time_h"].tolist() == [0.0, 168.0, 336.0, 1008.0]
    assert ev["previous_dose"].tolist() == [0.0, 5.0, 15.0, 0.0]
    assert ev["dose"].tolist() == [5.0, 15.0, 30.0, 30.0]
    f = time_features(obs("P1", [100, 300, 400, 1100]), d)
    assert f["dose_current"].tolist() == [5.0, 15.0, 30.0, 30.0]
    assert f["event_index"].tolist() == [0, 1, 2, 3]
    assert f["time_since_event_h"].tolist() == [100.0, 132.0, 64.0, 92.0]


def test_interruption_and_restart():
    d = dosing_rows("P1", [(1, 0, 100, 15), (1, 130, 672, 15)])
    ev = infusion_events(d)
    assert ev["kind"].tolist() == ["start", "restart"]
    assert ev["previous_dose"].tolist() == [0.0, 0.0]
    assert ev["first_exposure"].tolist() == [True, False]

    f = time_features(obs("P1", [99, 100, 110, 130, 140]), d)
    assert f["dose_current"].tolist() == [15.0, 0.0, 0.0, 15.0, 15.0]
    assert f["on_infusion"].tolist() == [True, False, False, True, True]
    assert f["cycle"].tolist() == [1, 1, 1, 1, 1]
    assert f["event_kind"].tolist() == ["start", "start", "start", "restart", "restart"]
    assert f["time_since_event_h"].tolist() == [99.0, 100.0, 110.0, 0.0, 10.0]
    assert f["time_since_cycle_start_h"].tolist() == [99.0, 100.0, 110.0, 130.0, 140.0]
    assert f["first_exposure"].tolist() == [True, True, True, False, False]
    # the gap adds nothing to the exposure
    assert f["cumulative_exposure"].tolist() == pytest.approx(
        [15 * 99 / 24, 15 * 100 / 24, 15 * 100 / 24, 15 * 100 / 24, 15 * 110 / 24]
    )


def test_gap_tolerance_and_step_down():
    d = dosing_rows(
        "P1",
        [
            (1, 0, 50, 15),
            (1, 50.5, 100, 15),  # bag change within tolerance, same dose: no event
            (1, 100, 150, 5),  # step down
            (1, 150.8, 200, 15),  # step up across a gap within tolerance
            (1, 210, 300, 15),  # restart after 10 h
        ],
    )
    ev = infusion_events(d)
    assert ev["kind"].tolist() == ["start", "step_down", "step_up", "restart"]
    assert ev["previous_dose"].tolist() == [0.0, 15.0, 5.0, 0.0]
    # a larger tolerance turns the 10 h interruption into continued infusion (same dose: no event)
    ev = infusion_events(d, gap_tol_h=12.0)
    assert ev["kind"].tolist() == ["start", "step_down", "step_up"]
    # a zero tolerance makes every gap an interruption
    ev = infusion_events(d, gap_tol_h=0.0)
    assert ev["kind"].tolist() == ["start", "restart", "step_down", "restart", "restart"]


def test_contiguous_cycle_start_keeps_previous_dose():
    d = dosing_rows("P1", [(1, 0, 672, 15), (2, 672, 1344, 15)])
    ev = infusion_events(d)
    assert ev["kind"].tolist() == ["start", "cycle_start"]
    assert ev["previous_dose"].tolist() == [0.0, 15.0]


def test_zero_dose_segment_is_no_infusion():
    d = dosing_rows("P1", [(1, 0, 100, 15), (1, 100, 130, 0), (1, 130, 672, 15)])
    ev = infusion_events(d)
    assert ev["kind"].tolist() == ["start", "restart"]
    f = time_features(obs("P1", [110]), d)
    assert f["dose_current"].iloc[0] == 0 and not f["on_infusion"].iloc[0]


def test_event_kinds_are_known():
    ev = infusion_events(pd.concat([schedule("5-15-30", "A"), schedule("15", "B")]))
    assert set(ev["kind"]) <= set(EVENT_KINDS)
    assert ev.groupby("subject_id")["event_index"].apply(list).to_dict() == {
        "A": [0, 1, 2, 3],
        "B": [0, 1],
    }


# ----------------------------------------------------------------------------------------------
# time features
# ----------------------------------------------------------------------------------------------


def test_pre_dose_observations():
    f = time_features(obs("P1", [-48.0, -0.5]), schedule("15"), pk=SteadyStatePK())
    assert f["cycle"].tolist() == [0, 0]
    assert f["dose_current"].tolist() == [0.0, 0.0]
    assert f["time_since_event_h"].isna().all()
    assert f["time_since_cycle_start_h"].isna().all()
    assert f["event_index"].tolist() == [-1, -1]
    assert f["exposure_index"].tolist() == [-1, -1]
    assert f["event_kind"].isna().all()
    assert f["dose_previous"].tolist() == [0.0, 0.0]
    assert not f["on_infusion"].any() and not f["first_exposure"].any()
    assert f["cumulative_exposure"].tolist() == [0.0, 0.0]
    assert f["time_since_first_dose_h"].tolist() == [-48.0, -0.5]
    assert f["conc_pk"].tolist() == [0.0, 0.0]


def test_cumulative_exposure():
    f = time_features(obs("P1", [672, 700, 1008]), schedule("15"))
    assert f["cumulative_exposure"].tolist() == pytest.approx([420.0, 420.0, 420.0])
    f = time_features(obs("P1", [168, 672, 900]), schedule("5-15"))
    assert f["cumulative_exposure"].tolist() == pytest.approx([35.0, 350.0, 350.0])
    f = time_features(obs("P1", [1680]), schedule("5-15"))
    assert f["cumulative_exposure"].iloc[0] == pytest.approx(350.0 + 420.0)


def test_index_order_and_dtypes_preserved_for_several_patients():
    d = pd.concat([schedule("15", "A"), schedule("5-15", "B")], ignore_index=True)
    o = pd.DataFrame(
        {
            "subject_id": ["B", "A", "C", "B", "A"],
            "time_h": [200.0, 1010.0, 5.0, -1.0, 100.0],
            "value": [1.0, 2.0, 3.0, 4.0, 5.0],
        },
        index=[50, 10, 40, 20, 30],
    )
    f = time_features(o, d)
    assert f.index.tolist() == o.index.tolist()
    pd.testing.assert_frame_equal(f[o.columns], o)
    assert f["cycle"].tolist() == [1, 2, 0, 0, 1]
    assert f["dose_current"].tolist() == [15.0, 15.0, 0.0, 0.0, 15.0]
    assert f["event_kind"].tolist()[:2] == ["step_up", "cycle_start"]
    assert pd.isna(f["event_kind"].iloc[2]) and pd.isna(f["time_since_first_dose_h"].iloc[2])
    assert f["time_since_event_h"].tolist()[:2] == [32.0, 2.0]
    assert f["cycle"].dtype == np.int64 and f["event_index"].dtype == np.int64
    assert f["on_infusion"].dtype == bool and f["first_exposure"].dtype == bool
    assert o.columns.tolist() == ["subject_id", "time_h", "value"]  # input not modified


def test_empty_inputs():
    f = time_features(obs("P1", []), schedule("15"), pk=SteadyStatePK())
    assert len(f) == 0 and "conc_pk" in f.columns
    empty_dosing = schedule("15").iloc[0:0]
    f = time_features(obs("P1", [1.0, 2.0]), empty_dosing, pk=SteadyStatePK())
    assert f["cycle"].tolist() == [0, 0] and f["time_since_event_h"].isna().all()
    assert f["conc_pk"].tolist() == [0.0, 0.0]
    assert len(infusion_events(empty_dosing)) == 0


def test_input_errors():
    d = schedule("15")
    with pytest.raises(DosingInputError, match="lacks required column"):
        infusion_events(d.drop(columns="dose_ug_m2_day"))
    with pytest.raises(DosingInputError, match="gap_tol_h"):
        infusion_events(d, gap_tol_h=-1)
    with pytest.raises(DosingInputError, match="time_h"):
        time_features(obs("P1", [np.nan]), d)
    with pytest.raises(BayesBlinaError):
        time_features(pd.DataFrame({"subject_id": ["P1"]}), d)
    bad = d.copy()
    bad.loc[0, "end_h"] = -1.0
    with pytest.raises(DosingInputError, match="end_h must be greater"):
        infusion_events(bad)


# ----------------------------------------------------------------------------------------------
# PK
# ----------------------------------------------------------------------------------------------


def test_pk_default_constant_is_the_weighted_fit():
    fit = (20 * 5 * 198 + 32 * 15 * 694) / (20 * 5**2 + 32 * 15**2)
    assert SteadyStatePK().css_per_dose == pytest.approx(fit, abs=0.005)
    assert SteadyStatePK().half_life_h == 2.1
    assert SteadyStatePK().steady_state(15.0) == pytest.approx(15 * SteadyStatePK().css_per_dose)


def test_pk_steady_state_and_decay():
    pk = SteadyStatePK()
    d = dosing_rows("P1", [(1, 0, 672, 15)])
    c = pk.concentration(d, np.array([100.0, 300.0, 671.0]))
    np.testing.assert_allclose(c, pk.css_per_dose * 15, rtol=0.01)
    c_end = pk.concentration(d, 672.0)
    after = pk.concentration(d, 672.0 + np.array([1, 2, 3]) * pk.half_life_h)
    np.testing.assert_allclose(after, c_end * 0.5 ** np.array([1, 2, 3]), rtol=1e-9)
    assert pk.concentration(d, -1.0) == 0.0 and pk.concentration(d, 0.0) == 0.0
    # rise: half of steady state one half-life after the start
    assert pk.concentration(d, pk.half_life_h) == pytest.approx(pk.css_per_dose * 15 / 2)


def test_pk_continuous_at_a_step_and_reaches_new_level():
    pk = SteadyStatePK()
    d = schedule("5-15")
    eps = 1e-7
    c = pk.concentration(d, np.array([168 - eps, 168.0, 168 + eps]))
    assert np.ptp(c) < 1e-3
    assert c[1] == pytest.approx(pk.css_per_dose * 5, rel=1e-6)
    assert pk.concentration(d, 300.0) == pytest.approx(pk.css_per_dose * 15, rel=0.01)
    # after the step the concentration rises monotonically towards the new level
    grid = np.linspace(168, 200, 50)
    assert np.all(np.diff(pk.concentration(d, grid)) >= 0)


def test_pk_shape_and_matches_time_features():
    pk = SteadyStatePK(css_per_dose=40.0, half_life_h=3.0)
    d = pd.concat([schedule("5-15-30", "A"), schedule("15", "B")], ignore_index=True)
    times = np.array([-3.0, 0.5, 169.0, 340.0, 673.0, 1009.0, 2000.0])
    assert pk.concentration(d[d.subject_id == "A"], times.reshape(7, 1)).shape == (7, 1)
    o = pd.concat([obs("A", times), obs("B", times)], ignore_index=True)
    f = time_features(o, d, pk=pk)
    expected = np.r_[
        pk.concentration(d[d.subject_id == "A"], times),
        pk.concentration(d[d.subject_id == "B"], times),
    ]
    np.testing.assert_allclose(f["conc_pk"].to_numpy(), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(DosingInputError, match="one patient"):
        pk.concentration(d, times)


@pytest.mark.parametrize(
    "kwargs", [{"css_per_dose": 0.0}, {"half_life_h": -1.0}, {"half_life_h": math.inf}]
)
def test_pk_rejects_bad_parameters(kwargs):
    with pytest.raises(DosingInputError):
        SteadyStatePK(**kwargs)


# ----------------------------------------------------------------------------------------------
# regimens
# ----------------------------------------------------------------------------------------------


def test_standard_schedule_5_15():
    d = standard_schedule("5-15")
    assert list(d.columns) == ["cycle", "start_h", "end_h", "dose", "dose_unit", "dose_ug_m2_day"]
    assert d["cycle"].tolist() == [1, 1, 2]
    assert d["start_h"].tolist() == [0.0, 168.0, 1008.0]
    assert d["end_h"].tolist() == [168.0, 672.0, 1680.0]
    assert d["dose_ug_m2_day"].tolist() == [5.0, 15.0, 15.0]
    assert (d["dose_unit"] == "ug/m2/day").all()


def test_standard_schedule_5_15_30_and_flat():
    d = standard_schedule("5-15-30", n_cycles=3)
    assert d["start_h"].tolist() == [0.0, 168.0, 336.0, 1008.0, 2016.0]
    assert d["dose_ug_m2_day"].tolist() == [5.0, 15.0, 30.0, 30.0, 30.0]
    d = standard_schedule("15", n_cycles=1, cycle_on_days=14, cycle_off_days=0)
    assert d[["start_h", "end_h"]].values.tolist() == [[0.0, 336.0]]


@pytest.mark.parametrize("label", ["15", "5-15", "5-15-30", "15-30", "10-30", "7.5-15", "9-28-112"])
def test_standard_schedule_round_trips(label):
    assert regimen_label(standard_schedule(label, n_cycles=3)) == label


def test_regimen_label_of_real_histories():
    d = dosing_rows("P1", [(1, 0, 100, 15), (1, 130, 672, 15), (2, 1008, 1680, 15)])
    assert regimen_label(d) == "15"
    d = dosing_rows("P1", [(1, 0, 50, 5), (1, 50, 100, 5), (1, 100, 672, 15.0)])
    assert regimen_label(d.sample(frac=1.0, random_state=1)) == "5-15"
    with pytest.raises(DosingInputError, match="one patient"):
        regimen_label(pd.concat([schedule("15", "A"), schedule("15", "B")]))


@pytest.mark.parametrize("label", ["", "abc", "5-", "0-15", "-5", "5-15-30-60", "nan"])
def test_standard_schedule_rejects_bad_labels(label):
    with pytest.raises(DosingInputError):
        standard_schedule(label)


def test_standard_schedule_rejects_bad_days():
    with pytest.raises(DosingInputError):
        standard_schedule("5-15", step_day=40)
    with pytest.raises(DosingInputError):
        standard_schedule("5-15-30", step_day=15, second_step_day=8)
    with pytest.raises(DosingInputError):
        standard_schedule("15", n_cycles=0)


# ----------------------------------------------------------------------------------------------
# property test
# ----------------------------------------------------------------------------------------------

_segment = st.tuples(
    st.one_of(st.just(0.0), st.floats(0.0, 1.0), st.floats(1.0, 300.0)),  # gap before
    st.floats(0.5, 400.0),  # duration
    st.sampled_from([0.0, 5.0, 9.0, 15.0, 28.0, 30.0]),  # dose
    st.booleans(),  # starts a new cycle
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segments=st.lists(_segment, min_size=1, max_size=8),
    times=st.lists(st.floats(-100.0, 4000.0), min_size=1, max_size=30),
    gap_tol=st.sampled_from([0.0, 1.0, 5.0]),
)
def test_property_exposure_monotone_and_times_nonnegative(segments, times, gap_tol):
    rows, t0, cycle = [], 0.0, 1
    for i, (gap, duration, dose, new_cycle) in enumerate(segments):
        start = 0.0 if i == 0 else t0 + gap
        cycle += int(new_cycle and i > 0)
        rows.append((cycle, start, start + duration, dose))
        t0 = start + duration
    d = dosing_rows("P", rows)
    o = obs("P", times).sample(frac=1.0, random_state=0)
    f = time_features(o, d, gap_tol_h=gap_tol, pk=SteadyStatePK())
    f = f.sort_values("time_h", kind="stable")

    t = f["time_h"].to_numpy()
    cum = f["cumulative_exposure"].to_numpy()
    assert np.all(np.diff(cum) >= 0)
    # against a brute-force integral over segments
    start, end, dose = (np.array(c, dtype=float) for c in list(zip(*rows))[1:])
    overlap = np.clip(t[:, None], start, end) - start
    np.testing.assert_allclose(cum, (dose * overlap / 24.0).sum(axis=1), rtol=1e-9, atol=1e-9)
    covering = (t[:, None] >= start) & (t[:, None] < end)
    np.testing.assert_array_equal(f["dose_current"].to_numpy(), (covering * dose).sum(axis=1))

    infusing = dose > 0
    first = start[infusing].min() if infusing.any() else np.inf
    after = t >= first
    tse = f["time_since_event_h"].to_numpy()
    assert np.all(tse[after] >= 0) and np.all(np.isnan(tse[~after]))
    assert np.all(tse[after] <= f["time_since_first_dose_h"].to_numpy()[after])
    assert np.all((f["event_index"].to_numpy() >= 0) == after)
    assert np.all(np.diff(f["event_index"].to_numpy()) >= 0)
    assert np.all(f["conc_pk"].to_numpy() >= 0)
