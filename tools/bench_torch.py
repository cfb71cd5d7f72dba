#!/usr/bin/env python3
"""bench_torch.py — the same cases as tools/bench.cpp, in PyTorch, in the same output format
("name  ms  GFLOP/s"), so tools/bench.sh can print dfq / PyTorch ratios. A dev script: the
product and its tests never need Python."""
import argparse
import time

import torch
import torch.nn.functional as F


def time_ms(fn, repeats, cuda):
    fn()
    if cuda:
        torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        a = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        ts.append((time.perf_counter() - a) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def report(name, ms, flops):
    print(f"{name:<28} {ms:10.3f} ms {flops / (ms * 1e-3) / 1e9:10.1f} GFLOP/s", flush=True)


class CondBN(torch.nn.Module):
    """BatchNorm without affine, then per-class gamma / beta (GDFQ's conditional BN)."""
    def __init__(self, c, eps, classes=10):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(c, eps=eps, affine=False)
        self.gamma = torch.nn.Embedding(classes, c)
        self.beta = torch.nn.Embedding(classes, c)
        torch.nn.init.ones_(self.gamma.weight)
        torch.nn.init.zeros_(self.beta.weight)

    def forward(self, x, y):
        return self.gamma(y)[:, :, None, None] * self.bn(x) + self.beta(y)[:, :, None, None]


class Generator32(torch.nn.Module):
    """GDFQ's conditional generator at 32x32 (models/generator.h)."""
    def __init__(self, classes=10, latent=100):
        super().__init__()
        self.fc = torch.nn.Linear(latent, 128 * 8 * 8)
        self.cbn0, self.cbn1, self.cbn2 = CondBN(128, 1e-5, classes), CondBN(128, 0.8, classes), CondBN(64, 0.8, classes)
        self.conv1 = torch.nn.Conv2d(128, 128, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(128, 64, 3, padding=1)
        self.conv3 = torch.nn.Conv2d(64, 3, 3, padding=1)
        self.out_bn = torch.nn.BatchNorm2d(3, affine=False)

    def forward(self, z, y):
        x = self.cbn0(self.fc(z).view(-1, 128, 8, 8), y)
        x = F.leaky_relu(self.cbn1(self.conv1(F.interpolate(x, scale_factor=2)), y), 0.2)
        x = F.leaky_relu(self.cbn2(self.conv2(F.interpolate(x, scale_factor=2)), y), 0.2)
        return self.out_bn(torch.tanh(self.conv3(x)))


def bench_depthwise(dev, repeats, cuda):
    """Depthwise 3x3 convs (groups == C, pad 1, no bias) at MobileNetV2's shapes, batch 128 (dfq:
    dw3x3_*): forward, and forward + backward data + backward filter."""
    for name, c, h, stride in (("dw3x3_c96_32px_s2", 96, 32, 2), ("dw3x3_c144_16px", 144, 16, 1),
                               ("dw3x3_c384_4px", 384, 4, 1), ("dw3x3_c960_2px", 960, 2, 1)):
        p = (h - 1) // stride + 1
        x = torch.randn(128, c, h, h, device=dev)
        w = torch.randn(c, 1, 3, 3, device=dev) * 0.3
        flops = 2.0 * 128 * c * p * p * 9

        def fwd():
            F.conv2d(x, w, stride=stride, padding=1, groups=c)
        with torch.no_grad():
            report(name + "_fwd", time_ms(fwd, repeats, cuda), flops)
        xg = x.clone().requires_grad_()
        wg = w.clone().requires_grad_()
        g = torch.randn(128, c, p, p, device=dev)

        def step():
            xg.grad = None
            wg.grad = None
            F.conv2d(xg, wg, stride=stride, padding=1, groups=c).backward(g)
        report(name + "_fwdbwd", time_ms(step, repeats, cuda), 3 * flops)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="just the cases bench --only NAME runs (conv3x3_fwd, depthwise, ...)")
    a = ap.parse_args()

    def want(*names):
        return not a.only or a.only in names
    cuda = a.device == "cuda"
    if cuda:
        # TF32 off, as in dfq (quantization ranges are sensitive to it)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    print(f"# torch {torch.__version__} bench, device {a.device}"
          + (f", {torch.cuda.get_device_name()}" if cuda else f", {torch.get_num_threads()} threads"))
    torch.manual_seed(0)
    x = torch.randn(8, 64, 56, 56, device=dev)
    w = torch.randn(64, 64, 3, 3, device=dev) * 0.05
    flops = 2.0 * 8 * 64 * 56 * 56 * 64 * 9
    if want("conv3x3_fwd"):
        with torch.no_grad():
            report("conv3x3_fwd", time_ms(lambda: F.conv2d(x, w, padding=1), a.repeats, cuda), flops)
    xg = x.clone().requires_grad_()
    wg = w.clone().requires_grad_()
    g = torch.randn(8, 64, 56, 56, device=dev)

    def conv_step():
        xg.grad = None
        wg.grad = None
        F.conv2d(xg, wg, padding=1).backward(g)
    if want("conv3x3_fwdbwd"):
        report("conv3x3_fwdbwd", time_ms(conv_step, a.repeats, cuda), 3 * flops)

    if want("depthwise"):
        bench_depthwise(dev, a.repeats, cuda)

    lx = torch.randn(256, 512, device=dev, requires_grad=True)
    lw = (torch.randn(1000, 512, device=dev) * 0.05).requires_grad_()
    lb = torch.zeros(1000, device=dev, requires_grad=True)
    lg = torch.randn(256, 1000, device=dev)

    def lin_step():
        lx.grad = lw.grad = lb.grad = None
        F.linear(lx, lw, lb).backward(lg)
    if want("linear_fwdbwd"):
        report("linear_fwdbwd", time_ms(lin_step, a.repeats, cuda), 3 * 2.0 * 256 * 512 * 1000)

    n = 32 if cuda else 8
    sx = torch.randn(n, 64, 56, 56, device=dev)
    ws = [(torch.randn(64, 64, 3, 3, device=dev) * 0.05).requires_grad_() for _ in range(4)]
    gs = [torch.ones(64, device=dev, requires_grad=True) for _ in range(4)]
    bs = [torch.zeros(64, device=dev, requires_grad=True) for _ in range(4)]

    def stack_step():
        h = sx
        for i in range(4):
            h = F.relu(F.batch_norm(F.conv2d(h, ws[i], padding=1), None, None, gs[i], bs[i], training=True))
        h.mean().backward()
        for t in ws + gs + bs:
            t.grad = None
    if want("convstack_fwdbwd"):
        report(f"convstack_fwdbwd_n{n}", time_ms(stack_step, a.repeats, cuda), 4 * 3 * 2.0 * n * 64 * 56 * 56 * 64 * 9)
    if not want("resnet18_32px_fwd", "resnet18_32px_train", "mobilenet_v2_32px_fwd", "mobilenet_v2_32px_train",
                "gdfq_generator", "gdfq_teacher", "resnet18_224_fwdbwd", "int8"):
        return

    try:
        import torchvision
    except ImportError:
        print("# torchvision missing: ResNet18 cases skipped")
        return
    # eval forward at batch 256 and one SGD step at batch 128 (train_fp's inner loop), as bench.cpp
    for arch, macs in (("resnet18", 0.03716e9), ("mobilenet_v2", 0.006139e9)):
        m = getattr(torchvision.models, arch)(num_classes=10).to(dev).eval()
        rx = torch.randn(256, 3, 32, 32, device=dev)
        if want(arch + "_32px_fwd"):
            with torch.no_grad():
                report(arch + "_32px_fwd_b256", time_ms(lambda: m(rx), a.repeats, cuda), 256 * 2 * macs)
        m = getattr(torchvision.models, arch)(num_classes=10).to(dev).train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sx, sy = torch.randn(128, 3, 32, 32, device=dev), torch.randint(0, 10, (128,), device=dev)

        def sgd_step():
            loss = F.cross_entropy(m(sx), sy)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if want(arch + "_32px_train"):
            report(arch + "_32px_train_b128", time_ms(sgd_step, a.repeats, cuda), 128 * 3 * 2 * macs)

    # GDFQ's two halves at batch 64, 32x32, 10 classes (dfq: gdfq_generator_fwdbwd_b64,
    # gdfq_teacher_fwdbwd_b64): the generator as models/generator.h describes it, train mode
    g = Generator32().to(dev).train()
    z, gy = torch.randn(64, 100, device=dev), torch.randint(0, 10, (64,), device=dev)

    def gen_step():
        g.zero_grad(set_to_none=True)
        g(z, gy).mean().backward()
    if want("gdfq_generator"):
        report("gdfq_generator_fwdbwd_b64", time_ms(gen_step, a.repeats, cuda), 64 * 3 * 2 * 0.1158e9)
    t = torchvision.models.resnet18(num_classes=10).to(dev).eval()
    for p in t.parameters():
        p.requires_grad_(False)
    tx = torch.randn(64, 3, 32, 32, device=dev, requires_grad=True)

    def teacher_step():
        tx.grad = None
        F.cross_entropy(t(tx), gy).backward()
    if want("gdfq_teacher"):
        report("gdfq_teacher_fwdbwd_b64", time_ms(teacher_step, a.repeats, cuda), 64 * 3 * 2 * 0.03716e9)

    n = 32 if cuda else 8
    m = torchvision.models.resnet18(num_classes=1000).to(dev).train()
    tx = torch.randn(n, 3, 224, 224, device=dev)
    ty = torch.randint(0, 1000, (n,), device=dev)

    def rn_step():
        loss = F.cross_entropy(m(tx), ty)
        m.zero_grad(set_to_none=True)
        loss.backward()
    if want("resnet18_224_fwdbwd"):
        report(f"resnet18_224_fwdbwd_b{n}", time_ms(rn_step, a.repeats, cuda), n * 3 * 2 * 1.8186e9)

    if want("int8") and not cuda:
        bench_int8(a.repeats)


def quantized_torch(arch, classes, calib):
    """PyTorch's own int8 model: torchvision.models.quantization with the onednn backend (Debian's
    torch 1.13 has no fbgemm), the same float weights quantized by its default post-training flow:
    fuse conv + BN + ReLU, the backend's default qconfig (per-channel symmetric weights, histogram
    observers on activations), calibrate, convert."""
    import torchvision.models.quantization as tq
    torch.backends.quantized.engine = "onednn"
    m = getattr(tq, arch)(weights=None, quantize=False, num_classes=classes).eval()
    m.fuse_model()
    m.qconfig = torch.ao.quantization.get_default_qconfig("onednn")
    torch.ao.quantization.prepare(m, inplace=True)
    with torch.no_grad():
        m(calib)
    torch.ao.quantization.convert(m, inplace=True)
    return m


def bench_int8(repeats):
    """bench.cpp's int8 cases: resnet18 and mobilenet_v2 eval forwards at 224 px (1000 classes) batch 1
    and 32 and at 32 px (10 classes) batch 256, float32 and PyTorch's int8."""
    import torchvision
    cases = [("resnet18", 1000, 224, 1, 1.8186e9), ("resnet18", 1000, 224, 32, 1.8186e9), ("resnet18", 10, 32, 256, 0.03716e9),
             ("mobilenet_v2", 1000, 224, 1, 0.3008e9), ("mobilenet_v2", 1000, 224, 32, 0.3008e9),
             ("mobilenet_v2", 10, 32, 256, 0.006139e9)]
    for arch, classes, px, batch, macs in cases:
        tag, b = f"{arch}_{px}px_", f"_b{batch}"
        x = torch.randn(batch, 3, px, px)
        with torch.no_grad():
            m = getattr(torchvision.models, arch)(num_classes=classes).eval()
            report(tag + "fp32" + b, time_ms(lambda: m(x), repeats, False), batch * 2 * macs)
            q = quantized_torch(arch, classes, x)
            report(tag + "int8" + b, time_ms(lambda: q(x), repeats, False), batch * 2 * macs)


if __name__ == "__main__":
    main()
