"""Process groups under torchrun: NCCL on GPUs, gloo on CPUs; rank 0 alone writes logs and checkpoints."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    return rank() == 0


def init_from_environment(device: str) -> str:
    """Join the process group that torchrun describes in the environment; returns the device of this rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    use_cuda = device.startswith("cuda") and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def all_gather_objects(obj):
    if world_size() == 1:
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj):
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def average_(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over ranks, with one all-reduce per dtype."""
    if world_size() == 1 or not tensors:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat /= world_size()
        offset = 0
        for t in group:
            t.copy_(flat[offset: offset + t.numel()].view_as(t))
            offset += t.numel()


def broadcast_module_(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank."""
    if world_size() == 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_buffers_(module: torch.nn.Module) -> None:
    """Running statistics (BatchNorm) averaged over ranks, so every rank evaluates and saves the same model."""
    average_([b.data for b in module.buffers() if b.is_floating_point()])


def any_rank(flag: bool) -> bool:
    if world_size() == 1:
        return flag
    tensor = torch.tensor([float(flag)], device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def average_scalars(values: dict[str, float]) -> dict[str, float]:
    """Means over ranks of the same named scalars on every rank."""
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    average_([tensor])
    return dict(zip(keys, tensor.tolist()))


def _collective_device() -> str:
    return f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
