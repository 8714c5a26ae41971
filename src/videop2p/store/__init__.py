"""Persistence in one place: the atomic writer, the tensors-with-metadata codec and the workspace."""
