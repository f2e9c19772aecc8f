"""Convert a model to ONNX, or write it again as an export, with a model card (conf/export.yaml):
python export.py ckpt=PATH format=onnx output=model.onnx [scores=metrics.json] [card.author=...] [opset=17]
python export.py ckpt=PATH format=safetensors output=DIR/name [scores=metrics.json] [card.licence=...]
Installed, the same command is restoregan-export; both call restoregan.entry.
"""

from __future__ import annotations

from restoregan.entry import export_app as main, export_main

__all__ = ["main", "export_main"]  # `main`: the @hydra.main function tests call

if __name__ == "__main__":
    export_main()
