"""What runs without a person at a terminal: schedules the daemon fires, hooks other systems
call, and notifications that tell people how runs ended. The daemon drives all three; the
store holds their state, so several daemons on one store share it."""
