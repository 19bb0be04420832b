"""Gradio tabs of the web UI, one module per stage; each is a thin layer over the library."""
