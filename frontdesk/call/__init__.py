"""What a call needs from Pipecat: transport, pipeline, VAD, voices and failover."""
