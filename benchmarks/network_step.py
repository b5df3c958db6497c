"""Benchmark 1: one training step (forward, backward, SGD) of 3D_FCN_PPM next to nnU-Net's default network.

    python benchmarks/network_step.py --patch 32 64 64 --batch 2                    # CPU, small patch
    python benchmarks/network_step.py --device cuda --patch 64 160 160 --batch 4 \
        --precision fp32 fp16 bf16 --compile --channels-last --record               # GPU, the paper's settings

Both networks are built the way their plans build them: FCNPPM with the
arguments nnUNetPPMPlans writes, nnU-Net's PlainConvUNet with the topology its
planner derives for the same patch and spacing (get_pool_and_conv_props). One
row per network and setting: ms/step, voxels/s, FLOP per step (torch's flop
counter, forward + backward), achieved TFLOP/s and peak memory (CUDA: peak allocated;
CPU: the process's maximum resident size so far, cumulative over rows). `--record`
appends the rows to benchmarks/RESULTS.md with date, commit, device and torch version.
"""
import argparse
import itertools
import resource
import time
from typing import Callable, Dict

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
from torch.utils.flop_counter import FlopCounterMode

from nnunet_ppm.network import FCNPPM
from nnunet_ppm.planning.ppm_plans import ppm_architecture, pooling_strides
from results import Table

DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def ppm_network(spacing, patch, num_classes: int) -> torch.nn.Module:
    kwargs = dict(ppm_architecture(pooling_strides(spacing))["arch_kwargs"])
    kwargs.update(norm_op=torch.nn.InstanceNorm3d, nonlin=torch.nn.LeakyReLU)
    return FCNPPM(1, num_classes, **kwargs)


def nnunet_default_network(spacing, patch, num_classes: int) -> torch.nn.Module:
    _, pool_sizes, conv_sizes, _, _ = get_pool_and_conv_props(list(spacing), list(patch), 4, 999999)
    n = len(conv_sizes)
    return PlainConvUNet(1, n, [min(32 * 2 ** i, 320) for i in range(n)], torch.nn.Conv3d, conv_sizes, pool_sizes,
                         [2] * n, num_classes, [2] * (n - 1), True, torch.nn.InstanceNorm3d,
                         {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU, {"inplace": True})


NETWORKS: Dict[str, Callable] = {"ppm": ppm_network, "nnunet": nnunet_default_network}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training_step(net: torch.nn.Module, batch: int, patch, num_classes: int, device: torch.device,
                       precision: str, steps: int, channels_last: bool) -> Dict[str, float]:
    """Mean time of `steps` timed steps after 2 warm-up steps, FLOP of one step, peak memory: one row's figures."""
    net = net.to(device)
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(net.parameters(), 1e-3, momentum=0.9)
    x = torch.randn(batch, 1, *patch, device=device).to(memory_format=memory_format)
    y = torch.randint(0, num_classes, (batch, *patch), device=device)
    dtype = DTYPES[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(2):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    with FlopCounterMode(display=False) as counter:
        step()
    flop = counter.get_total_flops()
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    voxels = batch * torch.tensor(patch).prod().item()
    return {"ms": seconds * 1e3, "voxels_per_s": voxels / seconds, "tflop": flop / 1e12,
            "tflops": flop / seconds / 1e12, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--patch", type=int, nargs=3, default=[32, 64, 64])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 0.8])
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=list(DTYPES))
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd networks")
    parser.add_argument("--channels-last", action="store_true", help="also time channels_last_3d")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()

    device = torch.device(args.device)
    table = Table(["network", "batch x patch", "precision", "compile", "channels_last", "ms/step", "Mvoxel/s",
                   "TFLOP/step", "TFLOP/s", "peak GiB" if device.type == "cuda" else "process max RSS GiB"])
    for name, precision, compiled, channels_last in itertools.product(
            args.networks, args.precision, [False, True] if args.compile else [False],
            [False, True] if args.channels_last else [False]):
        torch.manual_seed(0)
        net = NETWORKS[name](args.spacing, args.patch, args.num_classes)
        if compiled:
            net = torch.compile(net)
        r = time_training_step(net, args.batch, args.patch, args.num_classes, device, precision, args.steps,
                               channels_last)
        table.add([name, f"{args.batch} x {'x'.join(map(str, args.patch))}", precision, str(compiled),
                   str(channels_last), f"{r['ms']:.0f}", f"{r['voxels_per_s'] / 1e6:.2f}", f"{r['tflop']:.3f}",
                   f"{r['tflops']:.2f}", f"{r['peak_gib']:.2f}"])
    if args.record:
        table.record(f"Network training step (benchmarks/network_step.py, spacing {tuple(args.spacing)} mm, "
                     f"{args.num_classes} classes)", device)


if __name__ == "__main__":
    main()
