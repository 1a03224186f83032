"""Automatic tagging: a Tagger protocol, built-in taggers, and the stage that runs them."""
