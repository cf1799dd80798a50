"""The report layer: one static, self-contained HTML page per swarm run, ``report.html``.

Built from the run's files alone, so it works for a run written on another machine and for a run
that was cut off; a file it cannot use becomes a message on the page, never a crash. The layer
reads the run folder through ``runs`` (artifact schemas, the runs folder) and the command logs
through ``harnesses`` (transcripts), and imports nothing above them: the engine calls
:func:`write_report` while a swarm runs and when it ends, and the command line
(``python -m pytest_oompa report``) calls :func:`main`. It never imports pytest.

Its rooms, in the order the data flows:

- :mod:`~pytest_oompa.report.model`: the run as typed values and the loader that validates and
  collects problems;
- :mod:`~pytest_oompa.report.formatting`: the small value formatters (durations, costs, ...);
- :mod:`~pytest_oompa.report.markup`: HTML as an element tree, escaped by its serializer only;
- :mod:`~pytest_oompa.report.timeline` and :mod:`~pytest_oompa.report.sections`: the timeline
  and the tables, each a function from the run to one ``<section>``;
- :mod:`~pytest_oompa.report.work`, with :mod:`~pytest_oompa.report.transcripts` and
  :mod:`~pytest_oompa.report.patches`: what each iteration did, its calls' transcripts (read
  from their command logs through the harnesses layer) and the patch it merged, capped;
- :mod:`~pytest_oompa.report.page`: the document, with ``static/report.css`` and
  ``static/report.js`` inlined and a Content-Security-Policy that allows only that script;
- :mod:`~pytest_oompa.report.cli`: the command.
"""

from __future__ import annotations

from pytest_oompa.report.cli import main, resolve_run_dir
from pytest_oompa.report.model import OUTCOMES, load_run
from pytest_oompa.report.page import render_report, write_report

__all__ = ["OUTCOMES", "load_run", "main", "render_report", "resolve_run_dir", "write_report"]
