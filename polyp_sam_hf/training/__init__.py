"""The training layer: the run's settings (`config`), losses (`losses`), checkpoints and resuming
(`checkpointing`), Ctrl-C (`stopping`) and the loop itself (`loop`). Imports the layers below it."""
