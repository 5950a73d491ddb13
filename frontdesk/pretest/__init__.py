"""The pre-launch test: the scenario suite adapted to one profile, played at the text level."""
