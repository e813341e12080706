"""Find crashes before players do: generated matches, checks after every call, minimal recordings."""
