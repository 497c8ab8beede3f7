"""The one exception of the data pipeline."""


class DataError(Exception):
    """A corpus, file or setting the pipeline cannot use. The message names the problem and the fix,
    and is meant to be shown to the user as it is (the CLI prints it without a traceback)."""
