"""Go's behaviour where Nakama's runtimes show it to a handler."""
