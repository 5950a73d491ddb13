"""Frontdesk's benchmarks: the load benchmark (``python -m bench``) and its Pipecat baseline."""
