"""Bringing accounts and payments in from files: streamed, validated row by row, batched."""
