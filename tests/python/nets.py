"""Small hand-written networks that exercise each converter, exported to ONNX by torch."""

from __future__ import annotations

import torch
from torch import nn


class TinyConvNet(nn.Module):
    """Every op of the first ncnn set with awkward attributes: strides, dilation, asymmetric padding,
    groups, depthwise, pools, residual add, clip/sigmoid/softmax, flatten, dense."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))  # asymmetric, folded into the next conv by the importer
        self.dw = nn.Conv2d(16, 16, 3, stride=1, groups=16)
        self.grouped = nn.Conv2d(16, 32, 3, padding=2, dilation=2, groups=4)
        self.pw = nn.Conv2d(32, 32, 1, bias=False)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avgpool = nn.AvgPool2d(2, stride=2)
        self.fc1 = nn.Linear(32, 24)
        self.fc2 = nn.Linear(24, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.clamp(self.dw(self.pad(x)), 0.0, 6.0)
        y = self.grouped(x)
        x = torch.sigmoid(self.pw(y)) * 0.5 + y
        x = self.avgpool(self.maxpool(x))
        x = x.mean(dim=(2, 3))
        x = torch.relu(self.fc1(x))
        return torch.softmax(self.fc2(x), dim=1)


class SplitByUnsupported(nn.Module):
    """An op ncnn has no layer for (erf, alone: not a GELU) between two conv blocks: two ncnn regions, TVM
    between."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.b(torch.erf(torch.relu(self.a(x)))))


class ShuffleBlock(nn.Module):
    """ShuffleNetV2's unit: split the channels in two, convolve one half, concatenate, shuffle the channels."""

    def __init__(self, channels: int = 16, groups: int = 2):
        super().__init__()
        self.groups = groups
        half = channels // 2
        self.branch = nn.Sequential(nn.Conv2d(half, half, 1), nn.ReLU(),
                                    nn.Conv2d(half, half, 3, padding=1, groups=half), nn.Conv2d(half, half, 1))

    def forward(self, x):
        kept, worked = x.chunk(2, dim=1)
        y = torch.cat([kept, self.branch(worked)], dim=1)
        n, c, h, w = y.shape
        return y.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
