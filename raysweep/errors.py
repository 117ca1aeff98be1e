"""User-facing errors. Anything raised as ``UserError`` is printed as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user: a config key, a value, a path. Exit code 2, nothing started."""

    exit_code = 2


class ConfigError(UserError):
    """A search-space YAML problem, always naming the file and the key."""

    def __init__(self, file, key, message):
        self.file = str(file) if file is not None else "<config>"
        self.key = key
        self.message = message
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + message)


class DataError(UserError):
    """A dataset that cannot be found or read, naming the path and what was expected."""
