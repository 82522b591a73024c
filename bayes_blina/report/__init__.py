"""Tables (and later figures and the HTML report) from fits and data."""
