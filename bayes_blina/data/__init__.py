"""Data format, validation, unit conversion and bundled published data."""
from bayes_blina.data.analytes import analyte_info, resolve_analyte
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.io import read_dataset, write_dataset

__all__ = ["Dataset", "read_dataset", "write_dataset", "resolve_analyte", "analyte_info"]
