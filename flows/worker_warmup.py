"""Imported last by the forkserver local worker processes fork from (:func:`flows.execution.preload_worker_modules`).

It builds Prefect's settings object once.  A task run on a worker starts by building one from the
settings the flow sent (``prefect.context.hydrated_context``), and pydantic-settings checks each
field's type against ``collections.abc`` classes there.  Those checks are cached per class, but every
``ABC.register`` call anywhere clears the negative caches, and importing the project's modules makes
many: the first task run of a freshly forked worker spent about a second of CPU re-deriving them
(py-spy of a 2-worker ``bench_corpus`` run, both workers), while the worker waited for it before its
first stage.  Built here, after those imports, the caches are warm in every worker forked afterwards.
"""

from prefect.settings import Settings

Settings()
