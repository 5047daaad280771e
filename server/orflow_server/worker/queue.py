"""Old import path, kept only until the lead's merge moves cli.py, bench/ and tests/conftest.py to the new ones.

DELETE at merge: SaqExpiryScheduler, expiry_job_key and EXPIRE_TASK now live in
orflow_server.jobs; NoQueueExpiryScheduler in orflow_server.ops.scheduling.
"""

from ..jobs import EXPIRE_TASK, SaqExpiryScheduler, expiry_job_key
from ..ops.scheduling import NoQueueExpiryScheduler

__all__ = ["EXPIRE_TASK", "NoQueueExpiryScheduler", "SaqExpiryScheduler", "expiry_job_key"]
