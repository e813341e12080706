"""A recording against real sockets: serve, playback, replay into a live Nakama, wire conversion."""
