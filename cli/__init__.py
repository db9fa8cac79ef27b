"""The ``annvq`` command line (click)."""
