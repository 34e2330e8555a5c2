"""The three protocols (``basket``, ``next_item``, ``ratings``), retrieval metrics and the metrics
they compute (``metrics``)."""
