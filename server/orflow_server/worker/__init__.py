"""The `orflow worker` process: SAQ runs the expiry use cases (the job it runs is defined in orflow_server/jobs.py)."""
