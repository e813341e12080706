"""Nakama Lua match modules in the replay runtime."""
