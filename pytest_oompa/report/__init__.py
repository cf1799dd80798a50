"""The HTML report of a run, built from the run's files alone."""
