"""Tests of the bench's own logic, on tiny homes the project ships."""
