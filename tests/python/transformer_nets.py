"""Small transformer networks written the way timm writes them, exported to ONNX by torch: the token layouts
(Linear on [1, N, C] tokens, qkv split by a permute that moves the batch axis, class token, position
embedding) that exporters turn into 2-D and batch-moving tensors."""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, act=nn.GELU):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), nn.Sequential(nn.Linear(dim, dim * 4), act(), nn.Linear(dim * 4, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, class token, position embedding, two blocks, class-token head."""

    def __init__(self, dim: int = 64, heads: int = 4, patch: int = 8, size: int = 32, classes: int = 10):
        super().__init__()
        tokens = (size // patch) ** 2 + 1
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.1)
        self.blocks = nn.Sequential(Block(dim, heads), Block(dim, heads))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


class ConvAttentionHybrid(nn.Module):
    """A mobile hybrid: conv stem with SiLU and hard-swish, then attention over the feature map's pixels as
    tokens (MobileViT-like), back to a feature map, global pooling head."""

    def __init__(self, dim: int = 32, heads: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 3, 2, 1), nn.SiLU(), nn.Conv2d(dim, dim, 3, 1, 1, groups=dim),
                                  nn.Hardswish())
        self.block = Block(dim, heads, act=nn.SiLU)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.stem(x)
        b, c, h, w = x.shape
        t = self.block(x.flatten(2).transpose(1, 2))
        x = t.transpose(1, 2).reshape(b, c, h, w) + x
        return self.head(x.mean((2, 3)))
