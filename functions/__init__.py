"""Trigger entry points, thin: parse, call one service, map the result. Each module exports a
`bp` blueprint that the root `function_app.py` registers. Nothing here imports `azure.mgmt`."""
