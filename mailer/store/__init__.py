"""The subscriber store: models, database, and the services everyone else goes through."""
