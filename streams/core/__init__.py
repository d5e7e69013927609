"""The batch core: raw records in, stored profiles and profile-update records out, shared by
the embedded mode, the worker and the tests."""
