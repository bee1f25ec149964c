"""The Textual front end: it shows the engine's events and never touches a process itself."""
