"""The example application (``python -m examples.webapp``, or ``make example``)."""
