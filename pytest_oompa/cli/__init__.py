"""The ``oompa`` command: upstream oompa's command line on top of this package.

Upstream's users type ``oompa run``, ``oompa list``, ``oompa view``, ``oompa tasks``,
``oompa check`` and ``oompa cleanup``; this layer gives them the same words. It sits above every
other layer and holds little logic of its own: each command reads the run folders, the task
queue, the harness registry or git through the public functions of the layers below, and
``oompa run`` starts pytest as a program (pytest is imported only by the plugin layer).
``main.py`` holds the command table, ``command.py`` what every command shares, and each other
module one command or one group of them.
"""
