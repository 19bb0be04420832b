"""A job child that runs the Python code given as its first argument (tests of how jobs end)."""

import sys

if __name__ == "__main__":
    code = sys.argv[1]
    exec(compile(code, "<job>", "exec"))  # noqa: S102 - test support: the tests write the code
