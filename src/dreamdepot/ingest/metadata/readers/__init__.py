"""One reader per generator. Each takes a :class:`Container` (and the file path, for the
generators that only leave a file name) and returns a Generation or None."""
