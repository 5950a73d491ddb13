"""Loopback emulators of every outside system Frontdesk talks to, and a Twilio-side caller.

Each emulator speaks the real wire protocol of its provider, so the real Frontdesk
program runs against them with only base URLs changed. They power ``make demo``, the
end-to-end tests and the benchmark. Faults (latency, errors, refused connections,
stalls, abrupt closes) can be switched on and off while they run.
"""
