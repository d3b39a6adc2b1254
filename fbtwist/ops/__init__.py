"""
Running the server: logs, metrics, health, graceful shutdown and worker
processes.
"""
