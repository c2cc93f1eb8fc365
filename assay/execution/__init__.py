"""Where analysis runs: embedded worker processes or Celery workers, both over one sandbox."""
