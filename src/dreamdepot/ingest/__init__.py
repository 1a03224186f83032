"""Where a file becomes a row: scanning, the ingest pipeline, watching, metadata readers."""
