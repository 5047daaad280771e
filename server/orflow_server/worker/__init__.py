"""The SAQ side of hold expiry: the queue adapter the server uses and the worker process."""
