"""The model layer: SAM and MobileSAM / LiteMedSAM as transformers models (`loading`, `modeling_tinyvit_sam`,
`convert`, `weights`, `attention`), what a checkpoint records about its origin (`provenance`), the
mask prompt made from a box (`mask_prompts`), and the one road from a batch to mask logits at the
original size (`segmenter`), with the cache of frozen image embeddings (`embedding_cache`).
Imports `core` and `data`."""
