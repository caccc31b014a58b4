"""Imported by the local executor's forkserver before it forks the workers (the runner asks for it
when a step identifies languages with heliport, ``LanguageIdentifier.forkserver_preload``).

heliport's model takes about 830 MB in memory. Loaded here once, in the forkserver, every worker
forked from it shares those pages copy-on-write (the model is only read), instead of each worker
loading a copy of its own; the runner's process, which only builds the steps, never loads it.
"""

from corpus.filters.language import heliport_identifier

heliport_identifier()
