"""Validate: Pandera models of the canonical staging tables."""
