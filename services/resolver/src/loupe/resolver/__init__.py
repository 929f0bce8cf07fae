"""Loupe resolver: turns reviewers' votes into final labels (streaming with Faust, or batch)."""
