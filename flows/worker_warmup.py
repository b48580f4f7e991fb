"""Imported last by the forkserver local worker processes fork from (:func:`flows.execution.preload_worker_modules`).

It builds Prefect's settings object once.  A task run on a worker starts by building one from the
settings the flow sent (``prefect.context.hydrated_context``), and pydantic-settings checks each
field's type against ``collections.abc`` classes there.  Those checks are cached per class, but every
``ABC.register`` call anywhere clears the negative caches, and importing the project's modules makes
many: the first task run of a freshly forked worker spent about a second of CPU re-deriving them
(py-spy of a 2-worker ``bench_corpus`` run, both workers), while the worker waited for it before its
first stage.  Built here, after those imports, the caches are warm in every worker forked afterwards.

It also makes the SSL context the workers' Prefect API clients share (:func:`flows.execution.warm_shared_ssl_context`):
a fresh worker's first task run would otherwise load the whole CA bundle for it (30 ms on an idle core,
up to 0.2 s on a busy one), as would its API version check.
"""

from prefect.settings import Settings

from flows.execution import warm_shared_ssl_context

Settings()
warm_shared_ssl_context()
