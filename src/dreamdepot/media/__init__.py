"""Pixels: identity hashes, safe decoding, thumbnails, placeholders, perceptual hashes."""
