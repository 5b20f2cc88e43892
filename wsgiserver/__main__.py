"""``python -m wsgiserver MODULE:APP [options]``."""

from .command import main

raise SystemExit(main())
