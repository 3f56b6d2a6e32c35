"""Ways out of purenet: ONNX graphs (``export_onnx``) for other runtimes."""
from .onnx import export_onnx, to_onnx
