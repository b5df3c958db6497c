"""Benchmark: memory of one training step, measured on the CPU, against a GPU budget (the paper's 12 GB TITAN X).

    python benchmarks/activation_memory.py                                  # 64x160x160, batch 4 estimate
    python benchmarks/activation_memory.py --patch 128 128 128 --batch 2 --networks nnunet --record

What a training step keeps on a GPU is, above all, the activations that
autograd saves for the backward pass. Without a GPU they are measured here on
the CPU, for one sample:

* saved for backward: every tensor autograd saves (``saved_tensors_hooks``),
  counted once per storage (views and tensors saved twice are not counted
  again), parameters excluded;
* peak during the step: the most tensor memory alive at once during forward
  and backward (the CPU allocator's events, ``torch.profiler``), parameters,
  gradients and the optimizer's momentum included.

Activations grow linearly with the batch, so the GPU peak at batch B is
estimated as B x (peak per sample - parameter memory) + parameter memory
(weights, gradients, momentum); the CUDA context and cuDNN workspaces
(typically 0.5-1 GiB) come on top. Precision "bf16" is CPU autocast to
bfloat16, which stands in for CUDA's fp16 autocast (nnU-Net's default): the
same 2-byte activations, and CPU autocast casts the same ops for both 2-byte
types, but its float16 kernels are slow. CPU autocast keeps pooling in
float32 where CUDA's does not, so it slightly overestimates CUDA autocast.
Networks as in network_step.py.
"""
import argparse
from typing import Dict

import torch
from torch.profiler import ProfilerActivity, profile

from network_step import NETWORKS
from results import Table

GIB = 2 ** 30


def saved_activation_bytes(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dtype) -> int:
    """Bytes of the storages autograd saves for backward in one forward pass (parameters excluded)."""
    parameter_storages = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: Dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
            torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = torch.nn.functional.cross_entropy(net(x), y)
    del loss
    return sum(saved.values())


def persistent_bytes(net: torch.nn.Module) -> int:
    """Bytes that stay for the whole training: weights, their gradients and SGD's momentum."""
    return 3 * sum(p.numel() * p.element_size() for p in net.parameters())


def peak_step_bytes(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dtype) -> int:
    """Most tensor bytes alive at once during forward + backward + SGD step (CPU allocator events)."""
    optimizer = torch.optim.SGD(net.parameters(), 1e-3, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()

    step()  # gradients and momentum exist from here on, as in training
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    live = peak = 0
    for event in sorted(profiler.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak + persistent_bytes(net)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 160, 160])
    parser.add_argument("--batch", type=int, default=4, help="batch size of the GPU estimate")
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 0.8])
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="bf16: CPU autocast, the 2-byte stand-in for CUDA fp16 autocast")
    parser.add_argument("--budget-gib", type=float, default=12.0, help="GPU memory to compare with (TITAN X: 12)")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()

    dtypes = {"fp32": None, "bf16": torch.bfloat16}
    table = Table(["network", "patch", "precision", "saved for backward GiB/sample", "peak in a step GiB/sample",
                   "parameter memory GiB", f"estimated GPU peak GiB at batch {args.batch}",
                   f"fits {args.budget_gib:g} GiB"])
    for name in args.networks:
        for precision in args.precision:
            torch.manual_seed(0)
            net = NETWORKS[name](args.spacing, args.patch, args.num_classes)
            x = torch.randn(1, 1, *args.patch)
            y = torch.randint(0, args.num_classes, (1, *args.patch))
            saved = saved_activation_bytes(net, x, y, dtypes[precision])
            peak = peak_step_bytes(net, x, y, dtypes[precision])
            persistent = persistent_bytes(net)
            estimate = args.batch * (peak - persistent) + persistent
            table.add([name, "x".join(map(str, args.patch)), precision, f"{saved / GIB:.2f}", f"{peak / GIB:.2f}",
                       f"{persistent / GIB:.3f}", f"{estimate / GIB:.1f}",
                       "yes" if estimate < args.budget_gib * GIB else "no"])
    if args.record:
        table.record("Training-step memory per sample, measured on the CPU (benchmarks/activation_memory.py)",
                     torch.device("cpu"))


if __name__ == "__main__":
    main()
