"""The one base class of the errors a person can act on, and the one place that words system errors for people.

Every stage raises a subclass of ``UserError`` (with its usual built-in base too, e.g. ``ValueError``)
for input, files or models a person can fix. The UI shows such a message as it is; any other exception
is a defect: it is logged with its traceback and shown as an internal error.

What a person reads names the file once, by its name, and says what happened in words: no errno
numbers, no internal paths (an upload lives in ``<workspace>/.gradio/<hash>/``: its name is what the
person knows), no reader library names. ``os_error_message`` words an ``OSError``; ``plain_detail``
cleans a library's message before it goes into ours; ``file_reason`` gives the reason one file of a
batch failed, for the line ``name: reason`` the UI and the CLIs print.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path


class UserError(Exception):
    """An error whose message says what to do (wrong input, missing model, unreadable file...)."""


# errno -> what happened, in the words of a person's file manager.
_OS_PHRASES = {
    errno.ENOENT: "Not found",
    errno.EACCES: "Permission denied",
    errno.EPERM: "Permission denied",
    errno.ENOSPC: "No space left on the disk",
    errno.EDQUOT: "Disk quota exceeded",
    errno.EROFS: "The disk is read-only",
    errno.EISDIR: "A folder, not a file",
    errno.ENOTDIR: "Not a folder",
    errno.EEXIST: "Already exists",
    errno.ENAMETOOLONG: "The name is too long",
    errno.EBUSY: "In use by another program",
    errno.ENOTEMPTY: "The folder is not empty",
    errno.EIO: "The disk could not be read or written (input/output error)",
    errno.EMFILE: "Too many open files",
}

_ERRNO = re.compile(r"\[(?:Errno|WinError) -?\d+\]\s*")
# A quoted path ('/ws/.gradio/3f2a/take 1.wav', "C:\\x\\y.wav"), with the ": " or " " that introduces it.
_QUOTED_PATH = re.compile(r"""(?::\s*|\s)?(['"])(?:[A-Za-z]:)?[^'"]*[\\/][^'"]*\1""")
# An unquoted absolute path (no spaces): /tmp/x/clip.wav
_BARE_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/'\":,;()]+)+/([^\s/'\":,;()]+)")


def os_error_message(error: OSError, name: str | None = None) -> str:
    """An `OSError` as a person reads it: what happened and to which file, by name.

    "[Errno 2] No such file or directory: '/ws/.gradio/3f2a/take 1.wav'" -> "Not found: take 1.wav".
    `name` replaces the file's name (e.g. an upload's original name); without a file: the phrase alone.
    """
    phrase = _OS_PHRASES.get(error.errno or -1)
    if phrase is None:  # strerror is the system's own words, without the number
        text = error.strerror or plain_detail(str(error)) or type(error).__name__
        phrase = text[:1].upper() + text[1:]
    filename = name or (Path(str(error.filename)).name if error.filename else "")
    return f"{phrase}: {filename}" if filename else phrase


def plain_detail(text: str) -> str:
    """A library's message made fit to quote: no errno numbers, no quoted paths, no trailing dot.

    "[Errno 1094995529] Invalid data found when processing input: '/ws/x.wav'" -> "Invalid data found
    when processing input"; "Error opening '/ws/x.wav': Format not recognised." -> "Format not recognised".
    """
    text = _ERRNO.sub("", str(text))
    text = _QUOTED_PATH.sub("", text)
    text = re.sub(r"^\s*Error opening\s*:?\s*", "", text)
    text = _BARE_PATH.sub(r"\1", text)
    return text.strip().strip(":").strip().rstrip(".")


def _lower_first(text: str) -> str:
    """ "Not found" -> "not found", but "RMS …" and "MP3 …" keep their capitals."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def file_reason(error: BaseException | str, path: str | Path) -> str:
    """Why one file of a batch failed, for a line that already names it (`name: reason`).

    The message loses a leading "name: " / "path: " and a trailing ": name" (so the name is said once),
    errno numbers and internal paths (absolute paths become their last part); an `OSError` that is not
    one of ours is worded by `os_error_message`.
    """
    name = Path(str(path)).name
    if isinstance(error, OSError) and not isinstance(error, UserError) and error.errno in _OS_PHRASES:
        return _lower_first(_OS_PHRASES[error.errno])
    text = str(error) or type(error).__name__
    text = _ERRNO.sub("", text)
    for prefix in (f"{path}: ", f"{name}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    for suffix in (f": {path}", f": {name}", f": '{path}'", f": '{name}'"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    text = _BARE_PATH.sub(r"\1", text).strip()
    return _lower_first(text) or type(error).__name__
