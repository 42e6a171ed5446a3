"""The data layer: the five polyp datasets read from their release layouts (`layouts`, `reading`,
`sources`), split as the paper splits them (`splits`), written as a Hugging Face `DatasetDict` with
a box-prompt column (`prepare`, `loading`); box prompts (`prompts`), augmentation (`augment`), the
frame resize SAM expects (`preprocessing`), and batches for the model (`batches`, `pixel_cache`,
`array_cache`). Imports only `core`."""
