"""How the server and worker show what they do: structured logs (logs.py) and OpenTelemetry traces (tracing.py).

Metrics are in `orflow_server.metrics`; the per-RPC log line and metrics come from `rpc/observe.py`.
"""
