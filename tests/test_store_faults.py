"""Fault injection on the fit store (issue 21).

* A writer killed at many points while replacing a fit (forked children that ``os._exit`` at the
  N-th traced line, so no ``finally`` and no cleanup runs, as with SIGKILL) leaves the old fit or
  the new one at the target, never a mixture, and never a partial folder that loads.
* Two writers at once: one wins, the other is refused with a message naming the lock's holder; a
  lock left by a killed writer is taken over.
* Truncated and bit-flipped ``posterior.nc``, a hand-edited provenance, a fit from a newer version:
  each refused naming the file and the problem.
* A crafted NetCDF whose attributes and variables carry pickles and code-like strings (with the
  checksum and the integrity digest recomputed, as an attacker would) loads as plain data and runs
  nothing.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import pickle
import sys
import time
import warnings

import numpy as np
import pytest

from bayes_blina._atomic import writer_lock
from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import FitExistsError, FitStoreError
from bayes_blina.inference import fit
from bayes_blina.store import POSTERIOR, PROVENANCE, load_fit, save_fit, seal_provenance, sha256_file
from conftest import aggregates_frame, response_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result():
    ds = Dataset(aggregates=aggregates_frame([("P", "all", "all", "5-15", 27, 70)]), name="tiny", origin="test")
    return fit(response_spec(draws=200, tune=200), ds)


def marked(result, marker: str):
    """A copy of ``result`` whose posterior carries ``marker`` (to tell old from new on disk)."""
    idata = result.idata.copy(deep=True)
    idata.posterior.attrs["marker"] = marker
    return dataclasses.replace(result, idata=idata)


def _fork() -> int:
    # The test process has idle sampler threads; the children only run Python and h5py code, and
    # _wait() fails the test instead of hanging should a child ever deadlock.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        return os.fork()


def _wait(pid: int, timeout_s: float = 120.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked writer {pid} did not finish in {timeout_s} s")
        time.sleep(0.01)


def _killed_at(event: int, res, out, force: bool) -> int:
    """Fork; the child saves and dies at its ``event``-th traced line. Returns the child's status."""
    pid = _fork()
    if pid == 0:  # child
        count = [0]

        def tracer(frame, why, arg):
            if why == "line":
                count[0] += 1
                if count[0] >= event:
                    os._exit(137)
            return tracer

        try:
            gc.disable()  # a collection's finalizers would add traced lines: counts must match the probe's
            sys.settrace(tracer)
            save_fit(res, out, force=force)
            sys.settrace(None)
            os._exit(0)
        except BaseException:
            os._exit(1)
    return _wait(pid)


def _count_lines(res, out) -> tuple[int, int]:
    """Traced lines of ``save_fit(res, out, force=True)`` over an existing fit, and the line count
    at which the old and new folders are exchanged (the commit point)."""
    count, swapped = [0], [0]

    def tracer(frame, why, arg):
        if why == "line":
            count[0] += 1
        elif why == "return" and frame.f_code.co_name == "_exchange" and not swapped[0]:
            swapped[0] = count[0]
        return tracer

    enabled = gc.isenabled()
    gc.disable()  # as in the killed writers: no finalizer runs in the middle of the count
    sys.settrace(tracer)
    try:
        save_fit(res, out, force=True)
    finally:
        sys.settrace(None)
        if enabled:
            gc.enable()
    return count[0], swapped[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
def test_a_writer_killed_anywhere_leaves_the_old_fit_or_the_new_one(result, tmp_path):
    old, new = marked(result, "old"), marked(result, "new")
    target = tmp_path / "fits" / "fit"
    save_fit(old, target)
    # The probe replaces an existing fit, as every run below does (a first save takes another path).
    probe = tmp_path / "probe" / "fit"
    save_fit(old, probe)
    total, swap = _count_lines(new, probe)
    assert total > 1000  # the save runs through xarray and h5netcdf: the points below spread over it
    assert 0 < swap < total, (swap, total)  # the exchange ran (Linux renameat2)
    rng = np.random.default_rng(21)
    points = set(rng.integers(1, total, size=40).tolist())
    points |= {1, 2, 3, swap - 2, swap - 1, swap, swap + 1, swap + 2, total - 2, total - 1}
    points = sorted(points)
    seen = set()
    for n in points:
        save_fit(old, target, force=True)
        code = _killed_at(n, new, target, force=True)
        assert code in (0, 137), (n, code)
        st = load_fit(target)  # always a complete fit
        marker = st.idata.posterior.attrs["marker"]
        # killed before the exchange: the old fit; from the exchange's return on: the new one
        assert marker == ("old" if n < swap else "new"), (n, swap, code)
        seen.add(marker)
        others = [p for p in target.parent.iterdir() if p.name != "fit"]
        for p in others:  # leftovers are hidden temporaries that never load as a fit under the target name
            assert p.name.startswith(".fit."), p
        for p in others:
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
    assert seen == {"old", "new"}  # kill points both before and after the swap were hit


def test_two_writers_at_once_one_wins_the_other_is_refused(result, tmp_path):
    target = tmp_path / "fit"
    with writer_lock(target):
        pid = _fork()
        if pid == 0:  # a second process tries to write while the first holds the lock
            try:
                save_fit(result, target)
            except FitStoreError as e:
                os._exit(3 if "another process" in str(e) and str(os.getppid()) in str(e) else 4)
            except BaseException:
                os._exit(5)
            os._exit(0)
        assert _wait(pid) == 3
        save_fit(result, target)  # the holder itself writes (the lock is re-entrant)
    assert load_fit(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]  # lock released and removed
    with pytest.raises(FitExistsError):
        save_fit(result, target)


def test_a_lock_left_by_a_killed_writer_is_taken_over(result, tmp_path):
    pid = _fork()
    if pid == 0:
        os._exit(0)
    _wait(pid)  # a pid that no longer runs
    import socket

    (tmp_path / ".fit.lock").write_text(f"{pid} {socket.gethostname()}")
    save_fit(result, tmp_path / "fit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]


def test_a_lock_held_on_another_host_is_respected(result, tmp_path):
    (tmp_path / ".fit.lock").write_text("4242 some-other-host")
    with pytest.raises(FitStoreError, match=r"pid 4242 on some-other-host\).*delete the lock file"):
        save_fit(result, tmp_path / "fit")
    assert not (tmp_path / "fit").exists()


@pytest.fixture
def saved(result, tmp_path):
    return save_fit(result, tmp_path / "fit")


@pytest.mark.parametrize("keep", [0, 100, 4096, -1])
def test_a_truncated_posterior_is_refused_naming_the_file(saved, keep):
    data = (saved / POSTERIOR).read_bytes()
    (saved / POSTERIOR).write_bytes(data[:keep] if keep >= 0 else data[:len(data) // 2])
    with pytest.raises(FitStoreError, match=r"posterior\.nc does not match its checksum"):
        load_fit(saved)


def test_bit_flips_anywhere_are_refused(saved):
    data = (saved / POSTERIOR).read_bytes()
    rng = np.random.default_rng(3)
    for pos in rng.integers(0, len(data), size=8):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        (saved / POSTERIOR).write_bytes(bytes(flipped))
        with pytest.raises(FitStoreError, match=r"posterior\.nc does not match its checksum"):
            load_fit(saved)


def test_truncation_with_a_resealed_checksum_is_refused_as_unreadable(saved):
    data = (saved / POSTERIOR).read_bytes()
    (saved / POSTERIOR).write_bytes(data[: len(data) // 3])
    _reseal(saved)
    with pytest.raises(FitStoreError, match=r"cannot read .*posterior\.nc as NetCDF"):
        load_fit(saved)


@pytest.mark.parametrize("edit", [
    lambda p: p["sampler"].update(draws=999),
    lambda p: p["data"].update(sha256="0" * 64),
    lambda p: p["diagnostics"].update(passed=True, failures=[]),
    lambda p: p["model"].update(spec_text="name = 'other'"),
])
def test_a_hand_edited_provenance_is_refused(saved, edit):
    prov = json.loads((saved / PROVENANCE).read_text())
    edit(prov)
    (saved / PROVENANCE).write_text(json.dumps(prov, indent=2))
    with pytest.raises(FitStoreError, match=r"provenance\.json was edited after the fit was written"):
        load_fit(saved)


def test_a_fit_from_a_newer_version_is_refused_naming_both_versions(saved):
    prov = json.loads((saved / PROVENANCE).read_text())
    prov["format_version"] = 7
    prov["package"]["version"] = "9.1.0"
    (saved / PROVENANCE).write_text(seal_provenance({k: v for k, v in prov.items() if k != "integrity"}))
    with pytest.raises(FitStoreError, match=r"bayes_blina 9\.1\.0 in fit format version 7.*upgrade bayes_blina"):
        load_fit(saved)


def _reseal(d):
    prov = json.loads((d / PROVENANCE).read_text())
    prov["files"][POSTERIOR] = sha256_file(d / POSTERIOR)
    (d / PROVENANCE).write_text(seal_provenance({k: v for k, v in prov.items() if k != "integrity"}))


class _Payload:
    """Unpickling this would create a file: the test checks that it never happens."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_netcdf_with_pickles_and_code_executes_nothing(saved, tmp_path):
    import h5py

    canary = tmp_path / "canary-was-written"
    blob = pickle.dumps(_Payload(str(canary)))
    with h5py.File(saved / POSTERIOR, "a") as f:
        g = f["posterior"]
        g.attrs["evil_pickle"] = np.void(blob)
        g.attrs["evil_code"] = f"__import__('os').system('touch {canary}')"
        g.attrs["bayes_blina_provenance"] = "!!python/object/apply:os.system ['touch " + str(canary) + "']"
        g.create_dataset("evil_bytes", data=np.frombuffer(blob, dtype=np.uint8))
    _reseal(saved)
    try:
        st = load_fit(saved)
    except FitStoreError:
        st = None  # refusing is fine too; executing is not
    assert not canary.exists()
    if st is not None:
        attrs = st.idata.posterior.attrs
        assert isinstance(attrs.get("evil_code"), str)  # kept as text, never evaluated
        np.testing.assert_array_equal(st.idata.posterior["p_typical"].shape[:2], (2, 200))
        st.verdict
        _ = st.spec
    assert not canary.exists()

