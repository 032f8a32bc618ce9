"""Batch prediction: files scored in the background by workers, results in the database.

``submit`` records a job in the registry's database and queues its id on a Huey queue
(SQLite in the home folder, or Redis); ``modelyard worker`` runs the jobs: each reads
its input a chunk at a time, checks every row against the version's input contract,
scores the valid rows with the runtime online serving uses, and commits the chunk's
results, failed rows and progress in one transaction. See :mod:`modelyard.batch.jobs`
for why a killed worker never loses or doubles a row.

Names are imported on first use, so ``import modelyard.batch`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.batch.api import cancel, list_jobs, results, status, submit
    from modelyard.batch.config import BatchSettings
    from modelyard.batch.jobs import Delivery, Job, JobStore
    from modelyard.batch.notify import verify_signature
    from modelyard.batch.queue import BatchQueue, run_worker

__all__ = [
    "BatchQueue",
    "BatchSettings",
    "Delivery",
    "Job",
    "JobStore",
    "cancel",
    "list_jobs",
    "results",
    "run_worker",
    "status",
    "submit",
    "verify_signature",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BatchQueue": "modelyard.batch.queue",
        "BatchSettings": "modelyard.batch.config",
        "Delivery": "modelyard.batch.jobs",
        "Job": "modelyard.batch.jobs",
        "JobStore": "modelyard.batch.jobs",
        "cancel": "modelyard.batch.api",
        "list_jobs": "modelyard.batch.api",
        "results": "modelyard.batch.api",
        "run_worker": "modelyard.batch.queue",
        "status": "modelyard.batch.api",
        "submit": "modelyard.batch.api",
        "verify_signature": "modelyard.batch.notify",
    },
)
