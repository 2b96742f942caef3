"""Writes a G_l2h checkpoint from PyTorch plus an input and PyTorch's output for it.

usage: write_reference.py ARCH BLOCKS FEATURES SCALE OUT_DIR
Outputs OUT_DIR/model.safetensors and OUT_DIR/io.safetensors (tensors `input`, `output`).
"""
import sys

import torch
from safetensors.torch import save_file

from sr_models import build, checkpoint_metadata

arch, blocks, features, scale, out_dir = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
torch.manual_seed(0)
net = build(arch, blocks, features, scale)
# Non-trivial BatchNorm statistics, so the test also checks they are loaded and used.
for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.1, 0.1)
        m.running_var.uniform_(0.5, 1.5)
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.uniform_(-0.1, 0.1)
net.eval()
save_file(
    {k: v.contiguous() for k, v in net.state_dict().items()},
    f"{out_dir}/model.safetensors",
    metadata=checkpoint_metadata(arch, blocks, features, scale, {"written_by": "pytorch reference"}),
)
x = torch.rand(1, 3, 13, 11)
with torch.no_grad():
    y = net(x)
save_file({"input": x, "output": y.contiguous()}, f"{out_dir}/io.safetensors")
