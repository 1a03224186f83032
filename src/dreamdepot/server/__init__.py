"""The HTTP face: a FastAPI app over the same library functions the CLI uses."""
