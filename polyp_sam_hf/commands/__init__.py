"""The jobs behind `polyp-sam` subcommands that are more than a library call: `predict` (frames and
box files in, masks and overlays out) and `reproduce` (every run of the paper's tables). The
command line itself, one registry entry per subcommand, is `polyp_sam_hf.commands.cli`."""
