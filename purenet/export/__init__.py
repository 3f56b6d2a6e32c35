"""Ways out of purenet: ONNX graphs (``export_onnx``) for other runtimes, and
safetensors files (``save_safetensors``; ``save_model`` to ``.safetensors``) for
other frameworks."""
from .onnx import export_onnx, to_onnx
from .safetensors import load_safetensors, save_safetensors
