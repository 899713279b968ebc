"""The kit daemon: one worker owns the state machine; button and phone only post events."""
