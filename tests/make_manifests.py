"""Writes src/gans/manifests/<format>.json: the parameter names, shapes and dtypes of community model files as
their users hold them, so tests can build such a file (random weights) without downloading one.

Run once, by hand, when a format is added (`python tests/make_manifests.py`); the JSON files are committed and
the tests read only them. The layouts come from spandrel's (and spandrel-extra-arches') own architecture classes,
built on the meta device with the hyper-parameters of the published file named in each entry's `source`, and for
RIFE from the layer list of Practical-RIFE's IFNet_HDv3.py (v4.5, v4.6), written out below as facts (layer names and
sizes), not built from any network of this project: the tests then check our RIFE against this independent list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "src" / "gans" / "manifests"


def spandrel_layout(build: Callable[[], nn.Module]) -> list[list]:
    try:
        with torch.device("meta"):  # no memory; some constructors call .item() and need real tensors
            net = build()
    except (RuntimeError, NotImplementedError):
        net = build()
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]


def rife_layout(outputs: int) -> list[list]:
    """Practical-RIFE v4.5 / v4.6 `flownet.pkl` (saved from DistributedDataParallel: every key starts with
    `module.`): four IFBlocks (block0 reads both frames and t: 7 channels; blocks 1-3 also the mask and the
    4-channel flow: 8 + 4) of width 192, 128, 96, 64; each: two stride-2 3x3 convs (c/2, c), eight residual 3x3
    convs with a per-channel `beta` scale (1, c, 1, 1), a 4x4 stride-2 transposed conv to 4 * `outputs` channels
    (pixel-shuffled to `outputs`: flow 4 + mask 1, v4.6 one more, unused)."""
    rows = []
    for i, (cin, c) in enumerate([(7, 192), (8 + 4, 128), (8 + 4, 96), (8 + 4, 64)]):
        p = f"module.block{i}."
        rows += [[p + "conv0.0.0.weight", [c // 2, cin, 3, 3]], [p + "conv0.0.0.bias", [c // 2]],
                 [p + "conv0.1.0.weight", [c, c // 2, 3, 3]], [p + "conv0.1.0.bias", [c]]]
        for j in range(8):
            rows += [[p + f"convblock.{j}.beta", [1, c, 1, 1]], [p + f"convblock.{j}.conv.weight", [c, c, 3, 3]],
                     [p + f"convblock.{j}.conv.bias", [c]]]
        rows += [[p + "lastconv.0.weight", [c, 4 * outputs, 4, 4]], [p + "lastconv.0.bias", [4 * outputs]]]
    return [[k, s, "float32"] for k, s in rows]


def entries() -> list[dict]:
    from spandrel.architectures.DnCNN import DnCNN
    from spandrel.architectures.DRUNet import DRUNet
    from spandrel.architectures.FBCNN import FBCNN
    from spandrel.architectures.KBNet import KBNet_s
    from spandrel.architectures.NAFNet import NAFNet
    from spandrel.architectures.SCUNet import SCUNet
    from spandrel.architectures.SwinIR import SwinIR
    from spandrel.architectures.Uformer import Uformer
    from spandrel_extra_arches.architectures.DDColor import DDColor

    return [
        {"format": "scunet", "stage": "restore", "arch": "SCUNet", "saved_as": "state_dict",
         "source": "scunet_color_real_psnr.pth (KAIR): SCUNet(in_nc=3, config=[4]*7, dim=64)",
         "build": lambda: SCUNet(in_nc=3, config=[4] * 7, dim=64)},
        {"format": "nafnet", "stage": "restore", "arch": "NAFNet", "saved_as": "params",
         "source": "NAFNet-SIDD-width32.pth (BasicSR, weights under `params`): width 32, enc [2, 2, 4, 8], "
                   "middle 12, dec [2, 2, 2, 2]",
         "build": lambda: NAFNet(img_channel=3, width=32, middle_blk_num=12, enc_blk_nums=[2, 2, 4, 8],
                                 dec_blk_nums=[2, 2, 2, 2])},
        {"format": "drunet", "stage": "restore", "arch": "DRUNet", "saved_as": "state_dict",
         "source": "drunet_color.pth (KAIR): in_nc=4 (RGB + noise level map), out_nc=3, nc [64, 128, 256, 512], "
                   "nb=4",
         "build": lambda: DRUNet(in_nc=4, out_nc=3, nc=[64, 128, 256, 512], nb=4)},
        {"format": "dncnn", "stage": "restore", "arch": "DnCNN", "saved_as": "state_dict",
         "source": "dncnn_color_blind.pth (KAIR, batch norm merged): in_nc=3, out_nc=3, nc=64, nb=20, act_mode=R",
         "build": lambda: DnCNN(in_nc=3, out_nc=3, nc=64, nb=20, act_mode="R")},
        {"format": "fbcnn", "stage": "restore", "arch": "FBCNN", "saved_as": "state_dict",
         "source": "fbcnn_color.pth (FBCNN release): in_nc=3, out_nc=3, nc [64, 128, 256, 512], nb=4",
         "build": lambda: FBCNN(in_nc=3, out_nc=3, nc=[64, 128, 256, 512], nb=4)},
        {"format": "kbnet", "stage": "restore", "arch": "KBNet", "saved_as": "params",
         "source": "KBNet_s SIDD denoiser (BasicSR layout, weights under `params`): width 64, enc [2, 2, 4, 8], "
                   "middle 12, dec [2, 2, 2, 2]",
         "build": lambda: KBNet_s()},
        {"format": "uformer", "stage": "restore", "arch": "Uformer", "saved_as": "state_dict",
         "source": "Uformer_B (SIDD / GoPro release): embed_dim 32, depths [1, 2, 8, 8, 2, 8, 8, 2, 1], win 8, "
                   "modulator",
         "build": lambda: Uformer(embed_dim=32, depths=[1, 2, 8, 8, 2, 8, 8, 2, 1], win_size=8, modulator=True,
                                  dd_in=3)},
        {"format": "swinir_lightweight_x2", "stage": "upscale", "arch": "SwinIR", "saved_as": "params",
         "source": "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth (weights under `params`): embed_dim 60, "
                   "depths [6]*4, heads [6]*4, window 8, pixelshuffledirect, x2",
         "build": lambda: SwinIR(upscale=2, in_chans=3, img_size=64, window_size=8, img_range=1.0,
                                 depths=[6, 6, 6, 6], embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2,
                                 upsampler="pixelshuffledirect", resi_connection="1conv")},
        {"format": "ddcolor_paper_tiny", "stage": "colorize", "arch": "DDColor", "saved_as": "state_dict",
         "source": "ddcolor_paper_tiny.pth (DDColor release, ModelScope): ConvNeXt-T encoder, "
                   "MultiScaleColorDecoder, nf 512, 100 queries, 3 scales, 9 decoder layers, spectral norm, "
                   "2 output channels",
         "build": lambda: DDColor(encoder_name="convnext-t", decoder_name="MultiScaleColorDecoder",
                                  num_input_channels=3, input_size=(512, 512), nf=512, num_output_channels=2,
                                  last_norm="Spectral", do_normalize=False, num_queries=100, num_scales=3,
                                  dec_layers=9)},
        {"format": "rife_v4_6", "stage": "interpolate", "arch": "RIFE", "saved_as": "state_dict",
         "source": "Practical-RIFE v4.6 train_log/flownet.pkl (IFNet_HDv3.py of v4.6; DDP `module.` prefixes)",
         "layout": lambda: rife_layout(6)},
        {"format": "rife_v4_5", "stage": "interpolate", "arch": "RIFE", "saved_as": "state_dict",
         "source": "Practical-RIFE v4.5 train_log/flownet.pkl (IFNet_HDv3.py of v4.5; DDP `module.` prefixes)",
         "layout": lambda: rife_layout(5)},
    ]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for entry in entries():
        params = entry.pop("layout")() if "layout" in entry else spandrel_layout(entry.pop("build"))
        total = sum(int(torch.Size(s).numel()) for _, s, _ in params)
        doc = {**entry, "parameters": total, "params": params}
        lines = ",\n".join("    " + json.dumps(p) for p in params)
        head = json.dumps({k: v for k, v in doc.items() if k != "params"}, indent=2)[:-2]
        (OUT / f"{entry['format']}.json").write_text(f"{head},\n  \"params\": [\n{lines}\n  ]\n}}\n")
        print(f"{entry['format']}: {len(params)} tensors, {total / 1e6:.2f} M values")


if __name__ == "__main__":
    main()
