"""The ``bwc`` command-line tool."""
