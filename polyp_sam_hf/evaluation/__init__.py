"""The evaluation layer: Dice and IoU (`metrics`, and the `evaluate` module in `hub_metric`),
the box-only baselines (`baselines`), scoring a split (`evaluate`), the paper's published numbers
(`published`) and tables beside them (`comparison`, `report`), figures (`figures`).
Imports `core`, `data` and `models`."""
