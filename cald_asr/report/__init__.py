"""Stage 8's reports: the recipes' RESULTS.md, written by cald_asr.bin.make_results."""
