"""The fuzz harness is run by hand, never collected as tests (see README.md)."""

collect_ignore = ["fuzz_parser.py"]
