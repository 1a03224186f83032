"""Dream Depot: a local-first library for AI-generated images.

The public API is small: open a :class:`~dreamdepot.library.Library`, read one file's
generation metadata with :func:`~dreamdepot.ingest.metadata.read_generation`.
"""

from dreamdepot.errors import DreamDepotError, MetadataError, QueryError, SchemaTooNewError

__version__ = "0.1.0"

__all__ = ["DreamDepotError", "MetadataError", "QueryError", "SchemaTooNewError", "__version__"]
