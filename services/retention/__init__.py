"""Retention: hard-deletes every recording past its deadline that is not held (R2, R5)."""
