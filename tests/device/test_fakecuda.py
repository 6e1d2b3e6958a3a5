"""The fake CUDA device itself: it refuses what CUDA refuses (device mixes, ``.numpy()``), accepts what CUDA
accepts (CPU scalars, CPU indices, copies across devices), and computes exactly the CPU's numbers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.device.fakecuda import DeviceMixError, FakeCudaTensor, fake_cuda, is_fake

pytestmark = pytest.mark.isolated  # fake CUDA: the module runs in a fresh interpreter (tests/isolated.py)


def test_a_cpu_tensor_meeting_a_gpu_tensor_is_refused(fake_gpus):
    gpu = torch.randn(4, 3).to("cuda")
    cpu = torch.randn(3, 2)
    with pytest.raises(DeviceMixError, match=r"same device, but found at least two devices, cuda:0 and cpu!"):
        gpu @ cpu
    with pytest.raises(DeviceMixError, match=r"aten.add.Tensor.*cuda:0 and cpu"):
        gpu + torch.ones(3)  # broadcasting does not make it legal
    with pytest.raises(DeviceMixError, match="cuda:0 and cpu"):
        torch.cat([gpu, torch.zeros(1, 3)])
    with pytest.raises(DeviceMixError, match="cuda:0 and cpu"):
        torch.ones(3) * torch.tensor(2.0, device="cuda")  # a GPU scalar in a CPU operation, too
    with pytest.raises(DeviceMixError, match="cuda:0 and cuda:1"):
        gpu + torch.ones(4, 3, device="cuda:1")


def test_numpy_needs_cpu_first_as_on_cuda(fake_gpus):
    values = torch.randn(5)
    gpu = values.cuda()
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu()"):
        gpu.numpy()
    with pytest.raises(TypeError, match="can't convert cuda:0"):
        np.asarray(gpu)
    assert np.array_equal(gpu.cpu().numpy(), values.numpy())
    assert gpu.tolist() == values.tolist() and gpu[2].item() == values[2].item() and bool(gpu.sum() == values.sum())


def test_what_cuda_accepts_is_accepted(fake_gpus):
    a = torch.arange(12.0).reshape(3, 4)
    g = a.to("cuda:1")
    assert is_fake(g) and g.device == torch.device("cuda", 1) and g.is_cuda and g.get_device() == 1
    assert torch.equal((g * torch.tensor(2.0) + 1).cpu(), a * 2 + 1)  # 0-dim CPU tensors are scalars
    assert torch.equal(g[torch.tensor([2, 0])].cpu(), a[[2, 0]])  # CPU indices into a GPU tensor
    assert torch.equal(g[a > 5].cpu(), a[a > 5])
    with pytest.raises(DeviceMixError, match="indices should be either on cpu or on the same device"):
        a[torch.tensor([1]).to("cuda:1")]
    cpu = torch.zeros(3, 4)
    cpu.copy_(g)  # copies across devices are legal
    g2 = torch.zeros(3, 4, device=g.device)
    g2.copy_(a)
    assert torch.equal(cpu, a) and torch.equal(g2.cpu(), a) and g2.device == g.device
    assert torch.equal(torch.zeros_like(g).cpu(), torch.zeros(3, 4)) and torch.zeros_like(g).device == g.device
    assert torch.as_tensor(np.ones(2), device="cuda:1").device == g.device
    assert g.to(torch.float16).device == g.device and g.to(torch.float16).dtype == torch.float16
    assert g.to("cpu").device.type == "cpu" and not is_fake(g.to(a)) and is_fake(a.to(g))
    assert g.to("cuda:1") is g  # already there: no copy, as torch does
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        torch.zeros(1, device="cuda:2")


def test_models_move_train_and_copy_with_cpu_numbers():
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    net = copy.deepcopy(ref)
    x = torch.randn(8, 3)
    loss = ref(x).square().mean()
    loss.backward()
    torch.optim.AdamW(ref.parameters(), lr=0.1).step()
    with fake_cuda():
        first = net[0].weight
        net.to("cuda:1")
        assert net[0].weight is first  # the same Parameter object, now on the GPU (swap_tensors)
        assert all(is_fake(t) and t.device.index == 1 for t in [*net.parameters(), *net.buffers()])
        out = net(x.to("cuda:1")).square().mean()
        out.backward()
        assert is_fake(net[0].weight.grad) and torch.equal(out.cpu(), loss)
        torch.optim.AdamW(net.parameters(), lr=0.1).step()
        clone = copy.deepcopy(net)  # what an exponential moving average does
        assert isinstance(clone[0].weight, torch.nn.Parameter) and clone[0].weight.device.index == 1
        with pytest.raises(DeviceMixError, match="cuda:1 and cpu"):
            net(x)  # the classic mistake: input left on the CPU
        for (name, p), q in zip(ref.state_dict().items(), net.state_dict().values(), strict=True):
            assert torch.equal(p, q.cpu()), name


def test_gradients_flow_back_through_device_moves(fake_gpus):
    a = torch.randn(4, requires_grad=True)
    (a.to("cuda") * 3).sum().backward()
    assert not is_fake(a.grad) and torch.equal(a.grad, torch.full((4,), 3.0))


def test_torch_cuda_queries_are_stood_in_for_only_inside():
    real = torch.cuda.is_available()
    with fake_cuda(device_count=3, capability=(7, 5)) as mode:
        assert torch.cuda.is_available() and torch.cuda.device_count() == 3
        assert torch.cuda.get_device_name("cuda:2") == "Fake CUDA GPU 2"
        assert torch.cuda.get_device_capability(1) == (7, 5) and torch.cuda.is_bf16_supported()  # emulated
        assert not torch.cuda.is_bf16_supported(including_emulation=False)
        torch.cuda.synchronize("cuda:1")
        torch.cuda.synchronize()
        assert mode.synchronized == [1, 0]
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            torch.cuda.synchronize(3)
        assert isinstance(torch.ones(1).cuda(), FakeCudaTensor)
    assert torch.cuda.is_available() == real and not is_fake(torch.ones(1))


def test_a_pinned_memory_data_loader_feeds_the_gpu(fake_gpus):
    import threading

    from torch.utils.data import DataLoader, TensorDataset

    data = torch.arange(16.0).reshape(8, 2)
    loader = DataLoader(TensorDataset(data), batch_size=4, pin_memory=True)
    batches = [x.to("cuda:1", non_blocking=True) for (x,) in loader]
    assert all(is_fake(b) and b.device.index == 1 for b in batches)
    assert torch.equal(torch.cat(batches).cpu(), data)
    # with workers, a loader pins in a thread of its own (where the function mode does not reach): what it calls
    # there must be stood in for too. (Not a loader with workers here: forking a test worker is fragile.)
    seen = []

    def pin_thread() -> None:
        torch.accelerator.set_device_index(1)
        seen.append((torch.ones(2).pin_memory().is_pinned(), torch.accelerator.current_device_index()))

    thread = threading.Thread(target=pin_thread)
    thread.start()
    thread.join()
    assert seen == [(True, 1)]
