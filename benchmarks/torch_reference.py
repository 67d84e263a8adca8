"""PyTorch versions of the benchmarked networks and training iterations, layer for layer the
same as genvision_jax's (same widths, kernels, normalization, optimizers and losses), so the
JAX steps can be timed against them on the same machine. Needs the `bench` extra (torch)."""

import math

import torch
from torch import nn
import torch.nn.functional as F


class DCGANGenerator(nn.Module):
  """28 px: z -> 7x7x(2w) -> 14x14xw -> 28x28xC, as genvision_jax.models.dcgan.Generator."""

  def __init__(self, latent_dim=100, width=64, channels=1):
    super().__init__()
    self.width = width
    self.fc = nn.Linear(latent_dim, 7 * 7 * 2 * width, bias=False)
    self.bn0 = nn.BatchNorm2d(2 * width, momentum=0.1, eps=1e-5)
    self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width, momentum=0.1, eps=1e-5)
    self.up2 = nn.ConvTranspose2d(width, channels, 4, 2, 1)

  def forward(self, z):
    h = self.fc(z).view(-1, 2 * self.width, 7, 7)
    h = F.relu(self.bn0(h))
    h = F.relu(self.bn1(self.up1(h)))
    return torch.tanh(self.up2(h))


class DCGANDiscriminator(nn.Module):
  """28 px: two 4x4 stride-2 convs (BatchNorm on the second), LeakyReLU 0.2, dense logit."""

  def __init__(self, width=64, channels=1):
    super().__init__()
    self.c1 = nn.Conv2d(channels, width, 4, 2, 1)
    self.c2 = nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(2 * width, momentum=0.1, eps=1e-5)
    self.fc = nn.Linear(7 * 7 * 2 * width, 1)

  def forward(self, x):
    h = F.leaky_relu(self.c1(x), 0.2)
    h = F.leaky_relu(self.bn2(self.c2(h)), 0.2)
    return self.fc(h.flatten(1))[:, 0]


class DCGANStep:
  """One Algorithm-1 iteration with k = 1: a D update, then a non-saturating G update."""

  def __init__(self, latent_dim=100, width=64, lr=2e-4):
    self.latent_dim = latent_dim
    self.g = DCGANGenerator(latent_dim, width)
    self.d = DCGANDiscriminator(width)
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr=lr, betas=(0.5, 0.999))
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr=lr, betas=(0.5, 0.999))

  def __call__(self, real):
    b = real.shape[0]
    z = torch.randn(b, self.latent_dim)
    with torch.no_grad():
      fake = self.g(z)
    d_loss = F.softplus(-self.d(real)).mean() + F.softplus(self.d(fake)).mean()
    self.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_opt.step()
    z = torch.randn(b, self.latent_dim)
    for p in self.d.parameters():
      p.requires_grad_(False)
    g_loss = F.softplus(-self.d(self.g(z))).mean()
    self.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_opt.step()
    for p in self.d.parameters():
      p.requires_grad_(True)
    return d_loss.detach(), g_loss.detach()


class ConvVAE(nn.Module):
  """As genvision_jax.models.vae.VAE(architecture='conv', width=32, hidden=256) at 28 px."""

  def __init__(self, latent_dim=16, width=32, hidden=256, channels=1):
    super().__init__()
    self.width = width
    self.e1 = nn.Conv2d(channels, width, 4, 2, 1)
    self.e2 = nn.Conv2d(width, 2 * width, 4, 2, 1)
    self.e3 = nn.Linear(7 * 7 * 2 * width, hidden)
    self.mean = nn.Linear(hidden, latent_dim)
    self.logvar = nn.Linear(hidden, latent_dim)
    self.d1 = nn.Linear(latent_dim, hidden)
    self.d2 = nn.Linear(hidden, 7 * 7 * 2 * width)
    self.d3 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1)
    self.d4 = nn.ConvTranspose2d(width, channels, 4, 2, 1)

  def forward(self, x):
    h = F.relu(self.e2(F.relu(self.e1(x))))
    h = F.relu(self.e3(h.flatten(1)))
    mean, logvar = self.mean(h), self.logvar(h)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    h = F.relu(self.d2(F.relu(self.d1(z)))).view(-1, 2 * self.width, 7, 7)
    return self.d4(F.relu(self.d3(h))), mean, logvar


class VAEStep:
  """One Adam step on the negative ELBO (Bernoulli likelihood on [0, 1] targets)."""

  def __init__(self, lr=1e-3):
    self.vae = ConvVAE()
    self.opt = torch.optim.Adam(self.vae.parameters(), lr=lr)

  def __call__(self, images):
    targets = (images + 1) / 2
    logits, mean, logvar = self.vae(images)
    recon = F.binary_cross_entropy_with_logits(logits, targets, reduction='none').flatten(1).sum(1)
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)
    loss = (recon + kl).mean()
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    return loss.detach()


def _gn(channels, groups=8):
  return nn.GroupNorm(math.gcd(channels, groups), channels)


class ResBlock(nn.Module):
  """As genvision_jax.models.unet.ResBlock (dropout 0)."""

  def __init__(self, c_in, features, emb_dim):
    super().__init__()
    self.gn1, self.conv1 = _gn(c_in), nn.Conv2d(c_in, features, 3, 1, 1)
    self.emb = nn.Linear(emb_dim, features)
    self.gn2, self.conv2 = _gn(features), nn.Conv2d(features, features, 3, 1, 1)
    self.skip = nn.Conv2d(c_in, features, 1) if c_in != features else nn.Identity()

  def forward(self, x, emb):
    h = self.conv1(F.silu(self.gn1(x)))
    h = h + self.emb(F.silu(emb))[:, :, None, None]
    h = self.conv2(F.silu(self.gn2(h)))
    return self.skip(x) + h


class Attention(nn.Module):
  """As genvision_jax.models.unet.AttentionBlock: x + MHA(GN(x)) over the H*W positions."""

  def __init__(self, channels, heads):
    super().__init__()
    self.gn = _gn(channels)
    self.mha = nn.MultiheadAttention(channels, heads, batch_first=True)

  def forward(self, x):
    b, c, h, w = x.shape
    y = self.gn(x).flatten(2).transpose(1, 2)
    y = self.mha(y, y, y, need_weights=False)[0]
    return x + y.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
  """As genvision_jax.models.unet.UNet with experiments/ddpm_mnist.py's settings (base 16,
  channel_mults (1, 2, 4), one residual block per level, attention at 7 px, 4 heads)."""

  def __init__(self, channels=1, base=16, mults=(1, 2, 4), blocks=1, attention=(7,), heads=4,
               size=28):
    super().__init__()
    self.base, emb_dim = base, 4 * base
    self.emb1, self.emb2 = nn.Linear(base, emb_dim), nn.Linear(emb_dim, emb_dim)
    self.conv_in = nn.Conv2d(channels, base, 3, 1, 1)
    self.down, widths, c, res = nn.ModuleList(), [base], base, size
    for level, mult in enumerate(mults):
      for _ in range(blocks):
        layer = nn.ModuleList([ResBlock(c, base * mult, emb_dim)])
        c = base * mult
        if res in attention:
          layer.append(Attention(c, heads))
        self.down.append(layer)
        widths.append(c)
      if level < len(mults) - 1:
        self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, 2, 1)]))
        widths.append(c)
        res //= 2
    self.mid = nn.ModuleList([ResBlock(c, c, emb_dim), Attention(c, heads),
                              ResBlock(c, c, emb_dim)])
    self.up = nn.ModuleList()
    for level, mult in reversed(list(enumerate(mults))):
      for _ in range(blocks + 1):
        layer = nn.ModuleList([ResBlock(c + widths.pop(), base * mult, emb_dim)])
        c = base * mult
        if res in attention:
          layer.append(Attention(c, heads))
        self.up.append(layer)
      if level > 0:
        self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode='nearest'),
                                      nn.Conv2d(c, c, 3, 1, 1)]))
        res *= 2
    self.gn_out, self.conv_out = _gn(c), nn.Conv2d(c, channels, 3, 1, 1)

  def _time_embedding(self, t):
    half = self.base // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

  def forward(self, x, t):
    emb = self.emb2(F.silu(self.emb1(self._time_embedding(t))))
    h = self.conv_in(x)
    skips = [h]
    for layer in self.down:
      for m in layer:
        h = m(h, emb) if isinstance(m, ResBlock) else m(h)
      skips.append(h)
    for m in self.mid:
      h = m(h, emb) if isinstance(m, ResBlock) else m(h)
    for layer in self.up:
      for m in layer:
        if isinstance(m, ResBlock):
          h = m(torch.cat([h, skips.pop()], dim=1), emb)
        else:
          h = m(h)
    return self.conv_out(F.silu(self.gn_out(h)))


class DiffusionStep:
  """One DDPM training step as experiments/ddpm_mnist.py: uniform t, the closed-form q(x_t|x_0),
  MSE on the noise, gradient clipping at 1, Adam 1e-3, EMA of the weights (0.999)."""

  def __init__(self, num_timesteps=1000, lr=1e-3, ema_decay=0.999):
    self.net = UNet()
    self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
    self.ema = [p.detach().clone() for p in self.net.parameters()]
    self.ema_decay = ema_decay
    betas = torch.linspace(1e-4, 0.02, num_timesteps, dtype=torch.float64)
    self.alpha_bar = torch.cumprod(1 - betas, 0).float()

  def __call__(self, images):
    t = torch.randint(0, len(self.alpha_bar), (images.shape[0],))
    eps = torch.randn_like(images)
    ab = self.alpha_bar[t][:, None, None, None]
    x_t = ab.sqrt() * images + (1 - ab).sqrt() * eps
    loss = F.mse_loss(self.net(x_t, t), eps)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
    self.opt.step()
    with torch.no_grad():
      for e, p in zip(self.ema, self.net.parameters()):
        e.mul_(self.ema_decay).add_(p.detach(), alpha=1 - self.ema_decay)
    return loss.detach()
