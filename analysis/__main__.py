"""``python -m analysis cohort …``: kept for scripts; the command line itself lives in :mod:`cli`."""

from cli import main

if __name__ == "__main__":
    raise SystemExit(main())
