"""Catalogue: indexes recordings from ``recordings.v1`` and serves their metadata."""
