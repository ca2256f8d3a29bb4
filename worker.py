"""Wrangler's main module: the Worker lives in ``edge.worker``.

workerd imports the main module by its bundle name (``worker``), which cannot contain a
package path, so this top-level module only re-exports the entrypoint class. It imports
neither ``workers`` nor ``js`` itself.
"""

from edge.worker import Default

__all__ = ["Default"]
