"""The ``assay`` command: argument parsing in :mod:`main`, each sub-command's work in its own module."""
