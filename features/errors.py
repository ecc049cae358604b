"""The error raised for a schema that does not compile or a value that does not fit its type."""


class FeatureError(ValueError):
    """A schema that cannot be compiled, or a value that does not fit its declared type."""
