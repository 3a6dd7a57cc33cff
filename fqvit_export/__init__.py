"""fqvit-export: FQ-ViT post-training quantization of timm ViT/DeiT/Swin, exported to integer ONNX."""
__version__ = "0.1.0"
