"""The garbage collector, told that what a started bot holds stays.

After the start the process holds about 200,000 objects that live as long as it does: modules, the
ORM's mappers and compiled statements, PTB's classes, the survey definitions, TextBlob's lexicons. A full
collection (generation 2) walks all of them, about a tenth of a second each time on the project
machine, and under load it runs every second or so: every update, answer and send of the whole process
waits for it. Moving them out of the collector's sight once, after the start, leaves it the objects made
since. Measured with ``bench/survey_throughput.py`` (bench/README.md): the bot's CPU per answer fell from
about 2.1 to 1.5 ms.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect the start's garbage, then exclude every object still alive from later collections.

    Call it once, when the bot has started. Frozen objects are never freed, so only what lives as long
    as the process should be alive at that point; a test that starts many bots in one process must not
    call it.
    """
    gc.collect()
    gc.freeze()
