"""User-facing errors: raised for bad input, printed by `main` as one line."""


class UserError(Exception):
  """An error caused by the user's input (a file, a config field, a flag).

  The message must name the offending file, line or field; `main` prints it
  as a single line and exits with status 2 instead of a traceback.
  """


class DataError(UserError):
  """Malformed or unusable data: a bad line, an unknown label, an empty split."""


class ConfigError(UserError):
  """An unknown or inconsistent configuration field."""


class LibraryError(UserError):
  """A task library that is inconsistent or incompatible with the request."""
