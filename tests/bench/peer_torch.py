"""Peer for `deno task bench`: the reference tiny GPT of docs/design.md section 6 trained in PyTorch
on the CPU (bytes, d 256, 4 layers, 4 heads MHA + RoPE on adjacent pairs, RMSNorm, SwiGLU 683,
untied head, T 128, B 16, AdamW, fp32), or its MoE variant (8 routed experts top-2 with a
softmax gate + 1 shared expert, hidden 128; a Python loop over experts, as HF does).
Prints one JSON line: {"peer": "pytorch", "tokensPerSec": ...}. Usage: peer_torch.py dense|moe STEPS
"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(2)
V, D, L, H, FF, T, B = 256, 256, 4, 4, 683, 128, 16
MOE = sys.argv[1] == "moe" if len(sys.argv) > 1 else False
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


class SwiGLU(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(d, h, bias=False), nn.Linear(h, d, bias=False), nn.Linear(d, h, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoE(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gate = nn.Linear(d, 8, bias=False)
        self.experts = nn.ModuleList([SwiGLU(d, 128) for _ in range(8)])
        self.shared = SwiGLU(d, 128)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs = F.softmax(self.gate(x), -1)
        w, idx = probs.topk(2, -1)
        w = w / w.sum(-1, keepdim=True)
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel():
                y.index_add_(0, rows, expert(x[rows]) * w[rows, slot, None])
        return (y + self.shared(x)).reshape(shape)


def rope(x, cos, sin):  # x [B, H, T, d], adjacent pairs
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(D), RMSNorm(D)
        self.qkv, self.o = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D, bias=False)
        self.ffn = MoE(D) if MOE else SwiGLU(D, FF)

    def forward(self, x, cos, sin):
        q, k, v = self.qkv(self.n1(x)).split(D, -1)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F, "scaled_dot_product_attention") else None
        if a is None:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
            s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
            a = s.softmax(-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, D))
        return x + self.ffn(self.n2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.blocks = nn.ModuleList([Block() for _ in range(L)])
        self.norm, self.head = RMSNorm(D), nn.Linear(D, V, bias=False)
        f = 10000 ** (-torch.arange(0, D // H, 2).float() / (D // H))
        ang = torch.arange(T).float()[:, None] * f[None]
        self.cos, self.sin = ang.cos(), ang.sin()

    def forward(self, ids):
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        return self.head(self.norm(x))


model = GPT()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
data = torch.randint(0, V, (STEPS + 2, B, T + 1))


def step(i):
    logits = model(data[i, :, :-1])
    loss = F.cross_entropy(logits.reshape(-1, V), data[i, :, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()


step(0)
times = []
for i in range(1, STEPS + 1):
    t0 = time.perf_counter()
    step(i)
    times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"peer": "pytorch-" + torch.__version__, "tokensPerSec": B * T / times[len(times) // 2]}))
