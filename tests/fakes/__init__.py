"""Provider fakes: real HTTP servers on 127.0.0.1 that behave like the provider and validate every request
against its official spec (``tests/fakes/spec.py``)."""
