"""The base class of the project's own errors.

Every error the project raises on purpose derives from :class:`XemoGPTError` (and from the builtin it refines, so
``except ValueError`` still works): its message names the file, recipe key or sample and says what to do, so the
command line prints it as one ``error: ...`` line instead of a traceback (``XEMOGPT_DEBUG=1`` shows one).
"""

from __future__ import annotations


class XemoGPTError(Exception):
    """An error whose message is meant for the user as it is."""

    def __str__(self) -> str:  # KeyError subclasses would quote their message; show it as written
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ComponentBuildError(XemoGPTError, ValueError):
    """A component could not be built from its recipe spec; the message starts with the recipe key."""
