"""Errors raised by the text frontend, with messages a person can act on."""

from core.errors import UserError


class TextFrontendError(UserError, ValueError):
    """Base class for text frontend errors (bad language code, bad version, missing package)."""


class UnknownLanguageError(TextFrontendError):
    """The language code is not one the frontend knows."""


class UnknownVersionError(TextFrontendError):
    """The symbol-table version is not v1 or v2."""


class LanguageNotInstalledError(TextFrontendError):
    """The language is known but the package that handles it is not installed."""

    def __init__(self, language: str, package: str, extra: str = "") -> None:
        self.language = language
        self.package = package
        msg = (
            f"Language {language!r} needs the Python package {package!r}, which is not installed "
            f"(install it with pip: pip install -r requirements.txt)."
        )
        if extra:
            msg += " " + extra
        super().__init__(msg)
