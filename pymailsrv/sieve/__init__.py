"""Sieve (RFC 5228) and its extensions: compile a script, run it on a message.

The stable entry points (ManageSieve and the delivery stage use them):

- ``compile_script(text, extensions=None) -> Script``: raises ``SieveError`` with ``.line`` and
  ``.column`` (1-based) for the first problem.
- ``EXTENSIONS``: the extension names this implementation supports (the SIEVE capability).
"""

from pymailsrv.sieve.compiler import Node, Script, compile_script
from pymailsrv.sieve.errors import SieveError, SieveRuntimeError
from pymailsrv.sieve.spec import EXTENSIONS

__all__ = ["EXTENSIONS", "Node", "Script", "SieveError", "SieveRuntimeError", "compile_script"]
