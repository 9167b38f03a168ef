"""The one exception type for user mistakes; the CLI prints it as one line and exits with code 2."""


class RewardLabError(Exception):
    """A problem the user can fix: bad input, a missing or corrupt file, an out-of-range setting.

    The message says what is wrong and how to fix it.
    """
