"""Decoding CTC outputs."""
