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


def did_you_mean(key: str, allowed) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_key(file, key, allowed, where="") -> ConfigError:
    return ConfigError(file, f"{where}{key}", f"unknown key ({did_you_mean(key, allowed)}allowed: {', '.join(sorted(allowed))})")


class DataError(UserError):
    """A dataset that cannot be found or read, naming the path and what was expected."""
