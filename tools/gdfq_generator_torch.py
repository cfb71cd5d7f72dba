# gdfq_generator_torch.py — dev check, PyTorch only (not part of dfq): trains the GDFQ CIFAR-size generator
# (as ../shared/docs/dfq_algorithms.md §3 describes it) against a Fashion-MNIST golden model and prints the
# teacher's CE / accuracy on its images. Usage: /usr/bin/python3 tools/gdfq_generator_torch.py ARCH ITERS BNS_WEIGHT
# (ARCH resnet18 | mobilenet_v2; BNS_WEIGHT 0.1 official, 0 = CE only). Shows whether the generator can learn
# the classes of a model at all, independently of dfq.
import os, sys, torch, torch.nn as nn, torch.nn.functional as F, torchvision
torch.manual_seed(0); torch.set_num_threads(2)
arch = sys.argv[1]; iters = int(sys.argv[2]); bnsw = float(sys.argv[3])
m = getattr(torchvision.models, arch)(num_classes=10)
sd = torch.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'golden', 'pth', f'fmnist_{arch}.pth'), map_location='cpu')
sd = sd.get('state_dict', sd); m.load_state_dict(sd); m.eval()
for p in m.parameters(): p.requires_grad_(False)
class G(nn.Module):
    def __init__(s):
        super().__init__(); s.emb = nn.Embedding(10, 100); s.l1 = nn.Linear(100, 128*8*8)
        s.b0 = nn.BatchNorm2d(128); s.c1 = nn.Conv2d(128,128,3,1,1); s.b1 = nn.BatchNorm2d(128, 0.8)
        s.c2 = nn.Conv2d(128,64,3,1,1); s.b2 = nn.BatchNorm2d(64, 0.8); s.c3 = nn.Conv2d(64,3,3,1,1); s.b3 = nn.BatchNorm2d(3, affine=False)
    def forward(s, z, y):
        x = s.l1(s.emb(y) * z).view(-1,128,8,8); x = s.b0(x)
        x = F.interpolate(x, scale_factor=2); x = F.leaky_relu(s.b1(s.c1(x)), 0.2)
        x = F.interpolate(x, scale_factor=2); x = F.leaky_relu(s.b2(s.c2(x)), 0.2)
        return s.b3(torch.tanh(s.c3(x)))
g = G(); opt = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
stats = []
def hook(mod, inp, out):
    x = inp[0]; stats.append((x.mean((0,2,3)), x.var((0,2,3), unbiased=False), mod))
for mod in m.modules():
    if isinstance(mod, nn.BatchNorm2d): mod.register_forward_hook(hook)
for it in range(iters):
    z = torch.randn(64, 100); y = torch.randint(0, 10, (64,))
    stats.clear(); out = m(g(z, y)); ce = F.cross_entropy(out, y)
    bns = sum(F.mse_loss(mu, md.running_mean) + F.mse_loss(v, md.running_var) for mu, v, md in stats) / len(stats)
    loss = ce + bnsw * bns; opt.zero_grad(); loss.backward(); opt.step()
    if it % 25 == 0 or it == iters - 1:
        acc = (out.argmax(1) == y).float().mean().item()
        print(f'{arch} it {it} ce {ce.item():.3f} bns {bns.item():.3f} acc {acc:.2f}', flush=True)
