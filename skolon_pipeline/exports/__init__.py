"""Exports for school authorities: validation files (sheets.sql, validation_file.py) and the plain-language
explanation of every reason code (explanations.py)."""
