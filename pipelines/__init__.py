"""GStreamer pipeline builders: file replay, live capture, synthetic source, overlay display.

Only this package imports GStreamer; the engine above it sees frames as NumPy arrays with
stream timestamps.
"""
