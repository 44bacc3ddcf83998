"""Publish: the warehouse, its history intervals and the removal guard."""
