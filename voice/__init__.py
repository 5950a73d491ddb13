"""Everything that touches Pipecat: transport, pipeline, conversation flow, providers.

Pipecat code stays in this package so a Pipecat upgrade touches few files.
"""
