"""The message pipeline: the stages every message passes before it is queued (base.py: the seam;
runner.py: the order and failure handling; build.py: the configuration; stages.py: built-ins)."""
