"""The publishing layer: a checkpoint as a Hub repository with its model card (`hub`), and the
box-prompt web demo (`app`). Imports the layers below it."""
