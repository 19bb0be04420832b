"""The one base class of the errors a person can act on.

Every stage raises a subclass of ``UserError`` (with its usual built-in base too, e.g. ``ValueError``)
for input, files or models a person can fix. The UI shows such a message as it is; any other exception
is a defect: it is logged with its traceback and shown as an internal error.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message says what to do (wrong input, missing model, unreadable file...)."""
