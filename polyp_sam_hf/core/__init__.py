"""The floor every layer stands on: the library's errors, name registries, crash-safe folder
replacement and file digests, and the CPU thread rule. Imports nothing else of the library."""
