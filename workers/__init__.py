"""Runnable processes: the ``doublelock`` CLI, the broker launcher, the demo."""
