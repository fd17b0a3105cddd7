"""Judging quality: arena votes and ratings, prompt suites and assertions (no UI, no database)."""
