"""CDISC ADaM import and export (ADSL, ADRS, ADEX, ADLB, ADPC, ADTTE; ``docs/import.md``).

:func:`read_adam` turns the analysis datasets of a study into a package :class:`Dataset`:

* **ADSL** (one record per subject) gives ``subjects``: ``USUBJID`` -> ``subject_id``,
  ``STUDYID`` -> ``study``, ``TRT01P`` (or ``ARM``) -> ``regimen`` (see
  :func:`parse_regimen_text`), ``AGE``/``AGEU`` -> ``age_years``, ``AGEGR1`` -> ``age_group`` when
  it is one of the package's groups, ``BMBLAST`` -> ``blast_pct``, ``BSA`` -> ``bsa_m2``,
  ``PRHSCTFL``, ``REFRFL``, ``NPRREL``, ``REGION1`` and ``TRTSDTM`` (first dose datetime);
  when ADSL has any of ``DTHDTM``/``DTHDT`` (death), ``EOSDTM``/``EOSDT`` with ``EOSSTT`` and
  ``DCSREAS`` (end of study), the earliest death or discontinuation (``EOSSTT`` not
  ``COMPLETED``) gives ``offstudy_h`` (hours from the first infusion start; a date without a time
  counts as the end of that day) and ``offstudy_reason`` (``death`` for a death, else
  ``DCSREAS`` normalised: ``WITHDRAWAL BY SUBJECT`` -> ``withdrawal``, ``ADVERSE EVENT`` ->
  ``adverse_event``, ..., other reasons ``other``).
* **ADRS** gives ``response``: the record of the response parameter (``PARAMCD`` ``CR2CYC``,
  else ``BOR``) with ``AVALC`` in the responder codes (``CR``, ``CRH``, ``Y``) is 1, in the
  non-responder codes 0, ``NE`` empty.
* **ADEX** (one record per infusion interval) gives ``dosing``: ``EXDOSE``/``EXDOSU``,
  ``ASTDTM``/``AENDTM`` or ``EXSTDTC``/``EXENDTC`` relative to the subject's first infusion start,
  ``APERIOD`` (or ``CYCLE``, ``AVISIT`` ``'CYCLE n'``) as cycle, else cycles derived from gaps of
  at least 7 days.
* **ADLB** and **ADPC** give ``observations``: ``PARAMCD`` (or ``PARAM``) resolved to an analyte
  code, ``AVAL``/``AVALC``/``AVALU``, time from ``AFRLT`` (hours, unit ``FRLTU``), else ``ADTM``
  minus the first dose datetime, else ``ADY`` (+ ``ATPT``); censoring from ``AVALC`` (``'<125'``,
  ``'BLQ'``, ``'BLD'``) or the flags ``BLQFL``/``BLODFL``, limits from ``ALLOQ``/``ALOD``.
* **ADTTE** (one record per subject and time-to-event parameter) gives ``os_days``/``os_event``
  (``PARAMCD`` ``OS``) and ``rfs_days``/``rfs_event`` (``RFS``): ``AVAL`` in ``AVALU`` (days by
  default; hours, weeks, months, years converted) from the first infusion start, ``CNSR`` 0 an
  event, 1 or more censored. ADSL's ``MRDCRFL`` (``Y``/``N``) gives ``mrd_response``. The codes are
  set in the mapping's ``[survival]`` section; ``HSCTDY`` (days from the first infusion start to an
  alloHSCT) gives ``hsct_days``.

Every name and code can be changed with a mapping file (TOML, :func:`load_mapping`). Problems are
reported in the terms of the ADaM files (``adlb.xpt, variable 'AVALU', row 17: ...``), all of
them at once, in one :class:`~bayes_blina.errors.DataValidationError`; the result has passed
:func:`~bayes_blina.data.schema.validate_tables`, so every rule of ``docs/data-format.md`` holds.

:func:`write_adam` writes a dataset back as ADaM files (CSV or SAS transport v5); reading them
with :func:`read_adam_folder` gives a dataset with the same :meth:`Dataset.sha256`.

The package is split by concern: :mod:`~bayes_blina.data.adam.mapping` (the mapping file),
:mod:`~bayes_blina.data.adam.values` (parsing rules of single cells),
:mod:`~bayes_blina.data.adam.source` (one file as records), :mod:`~bayes_blina.data.adam.observations`
(ADLB/ADPC records), :mod:`~bayes_blina.data.adam.reader` (:func:`read_adam`) and
:mod:`~bayes_blina.data.adam.writer` (:func:`write_adam`); what it shares with the NONMEM reader is
in :mod:`bayes_blina.data.records`.

Examples
--------
>>> from bayes_blina.data.adam import parse_regimen_text
>>> parse_regimen_text("Blinatumomab 5-15 UG/M2/DAY")
'5-15'
"""
from bayes_blina.data.adam.mapping import (ADAM_FILES, ADAM_PARAMCD, DEFAULT_VARIABLES, AdamMapping,
                                           AdamProblem, FileMapping, load_mapping)
from bayes_blina.data.adam.reader import read_adam, read_adam_folder
from bayes_blina.data.adam.values import parse_datetime, parse_regimen_text
from bayes_blina.data.adam.writer import write_adam

__all__ = [
    "ADAM_FILES",
    "ADAM_PARAMCD",
    "DEFAULT_VARIABLES",
    "AdamMapping",
    "AdamProblem",
    "FileMapping",
    "load_mapping",
    "parse_datetime",
    "parse_regimen_text",
    "read_adam",
    "read_adam_folder",
    "write_adam",
]
