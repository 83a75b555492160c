"""The enforcement worker: a Faust app joining intents with the sessions table."""
